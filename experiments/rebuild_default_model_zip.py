"""Ship ``model.zip`` with ``policy:default`` without retraining, and re-checksum its manifest.

    python experiments/rebuild_default_model_zip.py [--dest FOLDER]

Rebuilds ``metacurr/pretrained/default/model.zip`` from the shipped ``policy.pt`` (`rebuild_model_zip`:
same weights, fresh optimiser state), keeps ``policy.pt`` and ``normalizer.npz`` byte for byte, and
rewrites ``manifest.json`` in the current bundle format (file checksums + the manifest's own).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", default=str(ROOT / "metacurr" / "pretrained" / "default"),
                   help="the bundle folder to complete (default: the package's policy:default)")
    args = p.parse_args(argv)

    from metacurr.agents.bundle import FORMAT_VERSION, MANIFEST_SUM, manifest_digest, sha256
    from metacurr.agents.model_zip import rebuild_model_zip
    from metacurr.io import atomic_write_text, dumps

    dest = Path(args.dest)
    man = json.loads((dest / "manifest.json").read_text())
    tmp = dest / ".model.zip.tmp.zip"
    rebuild_model_zip(dest, tmp, man)
    tmp.replace(dest / "model.zip")
    man["format_version"] = FORMAT_VERSION
    man["files"] = {f: sha256(dest / f) for f in ("model.zip", "normalizer.npz", "policy.pt")}
    man.pop(MANIFEST_SUM, None)
    man[MANIFEST_SUM] = manifest_digest(json.loads(dumps(man)))
    atomic_write_text(dest / "manifest.json", dumps(man, indent=2, sort_keys=True) + "\n")
    print(f"wrote {dest}/model.zip and manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
