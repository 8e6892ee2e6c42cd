"""Class imbalance as a difficulty axis: asked ratios per stage, balanced val, seeds, bring-your-own data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metacurr.errors import ConfigError
from metacurr.tasks import build_curriculum, check_params
from metacurr.tasks import digits as digits_mod
from metacurr.tasks import mnist1d as mnist1d_mod
from metacurr.tasks import sequence as sequence_mod
from metacurr.tasks.curriculum import Curriculum
from metacurr.tasks.imbalance import (
    MAX_RATIO,
    class_counts,
    class_order,
    imbalance_stages,
    long_tail_labels,
    stage_imbalance,
)

MODULES = {"mnist1d": mnist1d_mod, "digits": digits_mod, "sequence": sequence_mod}
FAMILIES = list(MODULES)
SMALL = {"n_per_stage": 300, "n_val": 200, "n_test": 50, "n_shift": 100}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _raw_sets(draft) -> list[np.ndarray]:
    """The raw (unstandardised) evaluation arrays of a draft."""
    out = [draft.val[0], draft.val[1], draft.shift[0], draft.shift[1]]
    for x, y in draft.stage_tests:
        out += [x, y]
    return out


def test_stage_imbalance_ramp_list_and_bad_values():
    assert stage_imbalance(1.0, 3) == [1.0, 1.0, 1.0]
    assert stage_imbalance(16, 3) == [1.0, 4.0, 16.0]  # equal multiplicative steps
    assert stage_imbalance([1, 5, 2.5], 3) == [1.0, 5.0, 2.5]
    for bad in (0.5, MAX_RATIO + 1, float("nan"), True, "10", None):
        with pytest.raises(ConfigError, match="imbalance"):
            stage_imbalance(bad, 3)
    with pytest.raises(ConfigError, match="2 ratios but there are 3 stages"):
        stage_imbalance([1, 2], 3)
    with pytest.raises(ConfigError, match=r"imbalance\[1\]"):
        stage_imbalance([1, 0.9, 2], 3)


def test_class_counts_sum_ratio_and_order():
    order = np.array([3, 0, 2, 1])
    counts = class_counts(1000, 8.0, order)
    assert counts.sum() == 1000
    by_rank = counts[order]
    assert np.all(np.diff(by_rank) <= 0)  # head first, tail last
    assert counts[3] == counts.max() and counts[1] == counts.min()
    # exact shares 8^(-r/3) = 1, 1/2, 1/4, 1/8 of 1000 / 1.875
    assert by_rank.tolist() == [533, 267, 133, 67]
    assert abs(by_rank[0] / by_rank[-1] - 8.0) < 0.05
    assert class_counts(40, 1.0, order).tolist() == [10, 10, 10, 10]
    with pytest.raises(ConfigError, match="no example"):
        class_counts(20, 100.0, np.arange(10))


def test_long_tail_labels_draw_like_balanced_labels():
    """A long-tailed stage consumes the generator exactly as a balanced one (later sets do not move)."""
    from metacurr.tasks._common import balanced_labels

    a, b = np.random.default_rng(3), np.random.default_rng(3)
    y = long_tail_labels(300, 10.0, class_order(1, 10), a)
    balanced_labels(300, 10, b)
    assert np.bincount(y, minlength=10).tolist() == class_counts(300, 10.0, class_order(1, 10)).tolist()
    assert a.random() == b.random()


@pytest.mark.parametrize("family", FAMILIES)
def test_counts_per_class_per_stage_match_the_asked_ratio(family):
    mod = MODULES[family]
    ratios = [1.0, 4.0, 20.0]
    cur, draft = mod._build(3, 5, {**SMALL, "imbalance": ratios})
    order = class_order(5, cur.n_classes)
    assert cur.meta["class_order"] == order.tolist() and cur.meta["levels"]["imbalance"] == ratios
    for s in (1, 2):
        counts = np.bincount(draft.clean[s], minlength=cur.n_classes)
        assert counts.tolist() == class_counts(SMALL["n_per_stage"], ratios[s], order).tolist()
        assert int(np.argmax(counts)) == order[0] and int(np.argmin(counts)) == order[-1]
        assert abs(counts.max() / counts.min() - ratios[s]) / ratios[s] < 0.15  # rounding of small counts
        assert f"imb={ratios[s]:.3g}" in cur.stage_names[s]
    # the stage at ratio 1 is exactly the balanced build's stage
    _, bal = mod._build(3, 5, SMALL)
    assert np.array_equal(draft.clean[0], bal.clean[0]) and np.array_equal(draft.stages[0][0], bal.stages[0][0])


@pytest.mark.parametrize("family", FAMILIES)
def test_val_and_other_target_sets_stay_balanced(family):
    mod = MODULES[family]
    sizes = {**SMALL, "n_val": 800}  # the default size: digits' val is drawn from the held-out pool
    cur, draft = mod._build(3, 2, {**sizes, "imbalance": 30.0})
    bal_cur, bal = mod._build(3, 2, sizes)
    # the raw val / shift / stage-test examples are those of the balanced task with the same seed
    assert all(np.array_equal(a, b) for a, b in zip(_raw_sets(draft), _raw_sets(bal), strict=True))
    assert torch.equal(cur.val[1], bal_cur.val[1]) and torch.equal(cur.shift[1], bal_cur.shift[1])
    val_counts = np.bincount(draft.val[1], minlength=cur.n_classes)
    if family == "mnist1d":  # labels drawn balanced: equal counts
        assert val_counts.max() - val_counts.min() <= 1
    else:  # the held-out pool's mix (digits) / uniform first symbols (sequence)
        assert val_counts.max() / val_counts.min() < 1.3
    stage_counts = np.bincount(draft.clean[2], minlength=cur.n_classes)
    assert stage_counts.max() / stage_counts.min() > 20


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_data_and_the_seed_picks_the_rare_classes(family):
    mod = MODULES[family]
    a = mod.build(3, 11, **SMALL, imbalance=10.0)
    b = mod.build(3, 11, **SMALL, imbalance=10.0)
    for (xa, ya), (xb, yb) in zip([*a.stages, a.val, a.shift, *a.stage_tests],
                                  [*b.stages, b.val, b.shift, *b.stage_tests], strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.meta == b.meta
    orders = {tuple(class_order(s, a.n_classes)) for s in range(6)}
    assert len(orders) > 1  # different seeds, different tail classes


@pytest.mark.parametrize("family", FAMILIES)
def test_default_and_all_ones_are_the_balanced_task(family):
    mod = MODULES[family]
    base = mod.build(2, 4, **SMALL)
    for value in (1.0, 1, [1.0, 1.0]):
        cur = mod.build(2, 4, **SMALL, imbalance=value)
        for (xa, ya), (xb, yb) in zip([*base.stages, base.val, base.shift], [*cur.stages, cur.val, cur.shift],
                                      strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert cur.stage_names == base.stage_names and "class_order" not in cur.meta


def test_label_noise_applies_on_top_of_the_imbalance():
    _, draft = mnist1d_mod._build(3, 1, {**SMALL, "imbalance": [1, 1, 10], "label_noise": [0, 0, 0.3]})
    flipped = draft.flipped[2]
    assert 0.2 < flipped.mean() < 0.4
    assert np.array_equal(draft.stages[2][1][~flipped], draft.clean[2][~flipped])
    counts = np.bincount(draft.clean[2], minlength=10)
    assert counts.tolist() == class_counts(SMALL["n_per_stage"], 10.0, class_order(1, 10)).tolist()


def test_registry_lists_and_validates_the_parameter(capsys):
    from metacurr.cli import main

    assert main(["list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.strip().split(" ")[0] in FAMILIES]
    assert len(listed) == 3 and all("imbalance=1.0" in line for line in listed)
    for family in FAMILIES:
        assert check_params(family, {})["imbalance"] == 1.0
        with pytest.raises(ConfigError, match="imbalance must be a number"):
            build_curriculum(family, 3, 0, {**SMALL, "imbalance": 0.5})
    with pytest.raises(ConfigError, match="no example"):
        build_curriculum("mnist1d", 3, 0, {**SMALL, "n_per_stage": 20, "imbalance": 100.0})


def _blobs(n_per_class: int = 40, classes: int = 3, n_stages: int = 3):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n_per_class * classes) % classes
    return [(torch.randn(len(y), 4, generator=g), y.clone()) for _ in range(n_stages)]


def test_from_tensors_imbalance_subsamples_to_the_ratio():
    stages = _blobs()
    val = (torch.randn(30, 4), torch.arange(30) % 3)
    cur = Curriculum.from_tensors(stages, val, imbalance=[1.0, 4.0, 8.0], imbalance_seed=2)
    order = class_order(2, 3)
    assert cur.meta["imbalance"] == {"ratios": [1.0, 4.0, 8.0], "class_order": order.tolist()}
    assert torch.equal(cur.stages[0][0], stages[0][0]) and torch.equal(cur.val[1], val[1])
    for s, ratio in ((1, 4.0), (2, 8.0)):
        counts = torch.bincount(cur.stages[s][1], minlength=3).numpy()
        # head keeps all 40; shares 1, ratio^-1/2, ratio^-1 of it, floored
        assert counts[order].tolist() == [40, int(40 / ratio**0.5), int(40 / ratio)]
        # every kept example is an original (X, y) pair
        x, y = stages[s]
        match = (cur.stages[s][0][:, None, :] == x[None]).all(-1)
        assert match.sum(1).eq(1).all()
        assert torch.equal(y[match.float().argmax(1)], cur.stages[s][1])
    again = Curriculum.from_tensors(stages, val, imbalance=[1.0, 4.0, 8.0], imbalance_seed=2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(cur.stages, again.stages, strict=True))
    plain = Curriculum.from_tensors(stages, val)
    assert plain.meta == {"source": "from_tensors"}


def test_from_tensors_imbalance_bad_input():
    stages = _blobs(n_per_class=5)
    val = (torch.randn(6, 4), torch.arange(6) % 3)
    with pytest.raises(ConfigError, match="stage 2: imbalance ratio 50 leaves a class with no example"):
        Curriculum.from_tensors(stages, val, imbalance=[1, 1, 50])
    # class 1 is taught (stages 0 and 2) but stage 1, asked to be imbalanced, has none of it
    missing = [(x[y != 1], y[y != 1]) if i == 1 else (x, y) for i, (x, y) in enumerate(stages)]
    with pytest.raises(ConfigError, match="stage 1: class 1 has no example"):
        Curriculum.from_tensors(missing, val, imbalance=[1, 2, 1], n_classes=3)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        imbalance_stages(stages, 2.0, seed=-1)
