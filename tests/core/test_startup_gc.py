"""`startup_imports`: the collector is off while a command's heavy modules first load, then back on."""

from __future__ import annotations

import gc
import sys

from metacurr.cli.common import startup_imports


def test_collector_off_during_first_import_and_on_after():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with startup_imports("metacurr_not_a_module"):
            assert not gc.isenabled()
        assert gc.isenabled() and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_nothing_changes_once_the_module_is_loaded():
    assert "metacurr.cli.common" in sys.modules and gc.isenabled()
    frozen = gc.get_freeze_count()
    with startup_imports("metacurr.cli.common"):
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
