"""`Curriculum.from_tensors` / `from_scores` on user data, and the model-based difficulty scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metacurr.errors import ConfigError
from metacurr.tasks import digits as digits_mod
from metacurr.tasks.curriculum import Curriculum
from metacurr.tasks.scoring import model_loss_scores


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: intra-op threads only add contention on a busy machine (10x slower tests)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rand_pair(n: int, shape: tuple[int, ...] = (6,), n_classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g), torch.randint(n_classes, (n,), generator=g)


# ---------------------------------------------------------------- from_tensors


def test_from_tensors_signal_and_image():
    cur = Curriculum.from_tensors(
        [rand_pair(30), rand_pair(20, seed=1)], rand_pair(15, seed=2), rand_pair(10, seed=3)
    )
    assert cur.n_stages == 2 and cur.layout == "signal" and cur.input_shape == (6,)
    assert cur.n_classes == 3 and cur.stage_names == ["stage0", "stage1"]
    assert cur.describe()["stage_sizes"] == [30, 20]
    img = Curriculum.from_tensors([rand_pair(10, (4, 4))], rand_pair(5, (4, 4)), n_classes=5)
    assert img.layout == "image" and img.n_classes == 5 and img.shift is None


def test_from_tensors_converts_numpy_and_ints():
    x = np.arange(24, dtype=np.int64).reshape(8, 3)
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    cur = Curriculum.from_tensors([(x, y)], (x, y))
    assert cur.stages[0][0].dtype == torch.float32 and cur.stages[0][1].dtype == torch.int64


def nan_pair():
    x, y = rand_pair(10)
    x[3, 2] = float("nan")
    return x, y


@pytest.mark.parametrize(
    "stages,val,message",
    [
        ([(torch.randn(10, 6), torch.zeros(9, dtype=torch.long))], rand_pair(5), "10 rows but y has 9"),
        ([nan_pair()], rand_pair(5), "NaN"),
        ([rand_pair(10), (torch.randn(0, 6), torch.zeros(0, dtype=torch.long))], rand_pair(5), "empty"),
        ([rand_pair(10), rand_pair(10, (7,))], rand_pair(5), "shape"),
        ([rand_pair(10)], rand_pair(5, (7,)), "shape"),
        ([(torch.randn(10), torch.zeros(10, dtype=torch.long))], rand_pair(5), "at least 2 dims"),
        ([(torch.randn(10, 6), torch.zeros(10, 2, dtype=torch.long))], rand_pair(5), "y must have shape"),
        ([(torch.randn(10, 6), -torch.ones(10, dtype=torch.long))], rand_pair(5), "negative"),
        ([], rand_pair(5), "non-empty"),
        ([rand_pair(10)], (torch.randn(5, 6),), "pair"),
    ],
)
def test_from_tensors_rejects(stages, val, message):
    with pytest.raises(ConfigError, match=message):
        Curriculum.from_tensors(stages, val)


def test_from_tensors_rejects_label_beyond_n_classes():
    with pytest.raises(ConfigError, match="n_classes"):
        Curriculum.from_tensors([rand_pair(10, n_classes=3)], rand_pair(5), n_classes=2)


# ---------------------------------------------------------------- from_scores


def test_from_scores_orders_and_overlaps():
    x, y = rand_pair(200)
    scores = torch.linspace(0, 1, 200)[torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    # Mark each example by its score so stages can be traced back.
    x[:, 0] = scores
    val = rand_pair(20, seed=5)
    cur = Curriculum.from_scores(x, y, scores, n_stages=4, overlap=0.2, val=val)
    means = [float(s[0][:, 0].mean()) for s in cur.stages]
    assert means == sorted(means) and means[0] < means[-1]
    for (a, _), (b, _) in zip(cur.stages, cur.stages[1:], strict=False):
        shared = set(a[:, 0].tolist()) & set(b[:, 0].tolist())
        assert len(shared) > 0
        assert max(a[:, 0]) > min(b[:, 0])  # neighbour ranges interleave
    no_ov = Curriculum.from_scores(x, y, scores, n_stages=4, overlap=0.0, val=val)
    assert sum(len(s[1]) for s in no_ov.stages) == 200
    assert cur.meta["overlap"] == 0.2


def test_from_scores_holds_out_val():
    x, y = rand_pair(100)
    cur = Curriculum.from_scores(x, y, torch.rand(100), n_stages=2, overlap=0.0, val_fraction=0.25, seed=1)
    assert len(cur.val[1]) == 25 and sum(len(s[1]) for s in cur.stages) == 75


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_stages": 0}, "n_stages"),
        ({"n_stages": "3"}, "n_stages"),
        ({"n_stages": 500}, "n_stages"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"val_fraction": 0.0}, "val_fraction"),
    ],
)
def test_from_scores_rejects(kwargs, message):
    x, y = rand_pair(50)
    with pytest.raises(ConfigError, match=message):
        Curriculum.from_scores(x, y, torch.rand(50), **kwargs)


def test_from_scores_rejects_bad_scores():
    x, y = rand_pair(50)
    with pytest.raises(ConfigError, match="scores has 49"):
        Curriculum.from_scores(x, y, torch.rand(49))
    with pytest.raises(ConfigError, match="NaN"):
        Curriculum.from_scores(x, y, torch.full((50,), float("nan")))


# ---------------------------------------------------------------- model scorer


@pytest.fixture(scope="module")
def easy_hard_digits():
    """Clean digits (stage 0) and noisy digits with 40 % flipped labels (stage 1), with a hard flag."""
    cur, _ = digits_mod._build(
        2, 0, {"n_per_stage": 300, "overlap": 0.0, "label_noise": 0.4, "noise_max": 0.6}
    )
    (xe, ye), (xh, yh) = cur.stages
    x, y = torch.cat([xe, xh]), torch.cat([ye, yh])
    hard = torch.cat([torch.zeros(len(ye), dtype=torch.bool), torch.ones(len(yh), dtype=torch.bool)])
    return x, y, hard


def test_model_loss_scores_out_of_fold(easy_hard_digits):
    x, y, hard = easy_hard_digits
    state = torch.get_rng_state()
    scores = model_loss_scores(x, y, n_classes=10, layout="image", arch="mlp", steps=150, folds=2, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert scores.shape == (len(y),) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    assert float(scores[hard].mean()) > 2 * float(scores[~hard].mean())
    again = model_loss_scores(x, y, n_classes=10, layout="image", arch="mlp", steps=150, folds=2, seed=0)
    assert torch.equal(scores, again)


def test_model_scores_cut_a_curriculum(easy_hard_digits):
    x, y, hard = easy_hard_digits
    scores = model_loss_scores(x, y, n_classes=10, layout="image", arch="mlp", steps=150, folds=3, seed=1)
    x_tagged = torch.cat([x.flatten(1), hard[:, None].float()], 1)  # carry the flag through the cut
    cur = Curriculum.from_scores(x_tagged, y, scores, n_stages=3, overlap=0.1, seed=0, n_classes=10)
    assert cur.n_stages == 3
    hard_frac = [float(s[0][:, -1].mean()) for s in cur.stages]
    assert hard_frac[0] < hard_frac[-1]
    # Stage mean scores rise: look each example's score up by its row.
    lookup = {tuple(r.tolist()): float(s) for r, s in zip(x_tagged, scores, strict=True)}
    means = [np.mean([lookup[tuple(r.tolist())] for r in s[0]]) for s in cur.stages]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"folds": 1}, "folds"),
        ({"folds": 1000}, "folds"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"n_classes": 2}, "n_classes"),
        ({"arch": "resnet"}, "arch"),
        ({"layout": "sequence", "arch": "mlp"}, "arch"),
    ],
)
def test_model_loss_scores_rejects(kwargs, message):
    x, y = rand_pair(40, n_classes=3)
    params = {"n_classes": 3, "steps": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        model_loss_scores(x, y, **params)
