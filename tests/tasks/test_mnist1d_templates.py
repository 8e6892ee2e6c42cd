"""MNIST-1D's templates come from the package's own function, without importing matplotlib."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from metacurr.tasks.mnist1d import _package_templates


def test_templates_equal_the_packages_function():
    from mnist1d.data import get_templates

    ours, theirs = _package_templates(), get_templates()
    assert set(ours) == set(theirs)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k])


def test_building_a_curriculum_does_not_import_matplotlib():
    code = ("import sys\nfrom metacurr.tasks import build_curriculum\nbuild_curriculum('mnist1d', 3, 0)\n"
            "print('HEAVY', [m for m in ('matplotlib', 'requests', 'mnist1d') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
