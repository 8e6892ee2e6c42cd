"""Seeds: the four sub-seeds of a task seed are distinct streams, fixed across versions (same seed, same
numbers), and the evaluation / training seed ranges are enforced at their exact edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metacurr.errors import ConfigError
from metacurr.inner_run import derive_seeds
from metacurr.seeds import (
    EVAL_SEED_BASE,
    SEARCH_SEED_BASE,
    TRAIN_SEED_MAX,
    check_eval_seeds,
    check_train_seeds,
    eval_seeds,
    search_seeds,
)


def test_sub_seeds_are_pinned():
    # Changing these changes every model initialisation and mini-batch order: every recorded result.
    assert derive_seeds(0) == {"model": 3757552657, "order": 673228719, "probe": 3241444873, "controller": 3685993406}
    assert derive_seeds(10_000) == {"model": 4119609175, "order": 2138785123, "probe": 3061116522, "controller": 782552426}


def test_sub_seeds_are_distinct_streams():
    seen = set()
    for seed in [*range(50), 9_999, 10_000, 10_001, 2**31]:
        d = derive_seeds(seed)
        assert list(d) == ["model", "order", "probe", "controller"]
        assert len(set(d.values())) == 4, f"sub-seeds of {seed} coincide: {d}"
        assert all(isinstance(v, int) and 0 <= v < 2**32 for v in d.values())
        seen.update(d.values())
    assert len(seen) == 4 * 54  # no sub-seed shared between task seeds either
    d = derive_seeds(7)
    draws = [torch.rand(1, generator=torch.Generator().manual_seed(v)).item() for v in d.values()]
    assert len(set(draws)) == 4  # model init, batch order, probes and controller see different randomness
    assert derive_seeds(np.int64(7)) == d  # numpy integers are the same seed


def test_eval_seeds_and_search_seeds():
    assert eval_seeds(1) == [EVAL_SEED_BASE] == [10_000]
    assert eval_seeds(3, offset=2) == [10_002, 10_003, 10_004]
    assert search_seeds(3) == [SEARCH_SEED_BASE, SEARCH_SEED_BASE + 1, SEARCH_SEED_BASE + 2] == [9_000, 9_001, 9_002]
    assert search_seeds(1) == [9_000] and search_seeds(1000)[-1] == TRAIN_SEED_MAX  # the search fills the training range exactly
    with pytest.raises(ConfigError, match="training seed 10000 is outside"):
        search_seeds(1001)
    for bad in (0, -1, 1.5, "3"):
        with pytest.raises(ConfigError, match="number of seeds must be a positive integer"):
            eval_seeds(bad)
        with pytest.raises(ConfigError, match="number of search seeds must be a positive integer"):
            search_seeds(bad)
    for bad in (-1, 0.5):
        with pytest.raises(ConfigError, match="seed offset must be an integer >= 0"):
            eval_seeds(2, offset=bad)
    assert eval_seeds(1, offset=0) == [10_000]


def test_range_checks_at_their_edges():
    assert check_eval_seeds([EVAL_SEED_BASE, 10_005]) == [10_000, 10_005]
    assert check_eval_seeds(iter([10_001])) == [10_001]
    with pytest.raises(ConfigError, match=f"evaluation seed {TRAIN_SEED_MAX} is in the training range; evaluation seeds must be >= 10000"):
        check_eval_seeds([10_000, TRAIN_SEED_MAX])
    with pytest.raises(ConfigError, match="evaluation seeds must be distinct"):
        check_eval_seeds([10_001, 10_001])
    assert check_train_seeds([0, TRAIN_SEED_MAX]) == [0, 9_999]
    with pytest.raises(ConfigError, match=r"training seed 10000 is outside \[0, 9999\]; seeds >= 10000 are reserved"):
        check_train_seeds([0, EVAL_SEED_BASE])
    with pytest.raises(ConfigError, match=r"training seed -1 is outside"):
        check_train_seeds([5, -1])
    for check, what in ((check_eval_seeds, "evaluation"), (check_train_seeds, "training")):
        with pytest.raises(ConfigError, match=f"no {what} seeds given"):
            check([])
        for bad in (True, 1.0, "10001", None):
            with pytest.raises(ConfigError, match=f"{what} seeds must be integers, got"):
                check([bad])
