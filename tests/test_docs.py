"""Every ```python snippet in README.md and docs/*.md runs as written (in a fresh interpreter, in a temporary
folder), so the documentation cannot rot. Snippets use small budgets; none needs the network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets() -> list:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append(pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def test_docs_have_snippets():
    assert len(snippets()) >= 4


@pytest.mark.parametrize("code", snippets())
def test_snippet_runs(code, tmp_path):
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-2000:]


def test_links_to_repository_files_resolve():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
