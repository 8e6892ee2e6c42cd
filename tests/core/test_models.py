import pytest
import torch

from metacurr.errors import ConfigError
from metacurr.models import ARCHS, LAYOUT_ARCHS, build_model

SHAPES = {"signal": (40,), "image": (8, 8), "sequence": (16, 5)}


@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("arch", ARCHS)
def test_every_compatible_pair_builds_and_exposes_features(layout, arch):
    if arch not in LAYOUT_ARCHS[layout]:
        with pytest.raises(ConfigError, match="cannot read"):
            build_model(arch, layout=layout, input_shape=SHAPES[layout], n_classes=4, seed=0)
        return
    m = build_model(arch, layout=layout, input_shape=SHAPES[layout], n_classes=4, seed=0)
    x = torch.randn(5, *SHAPES[layout])
    logits, h = m.forward_with_features(x)
    assert logits.shape == (5, 4) and h.shape[0] == 5
    assert torch.allclose(m(x), logits)


def test_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("mlp", layout="signal", input_shape=(40,), n_classes=3, seed=7)
    after = torch.rand(1)
    b = build_model("mlp", layout="signal", input_shape=(40,), n_classes=3, seed=7)
    c = build_model("mlp", layout="signal", input_shape=(40,), n_classes=3, seed=8)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_unknown_arch():
    with pytest.raises(ConfigError, match="valid choices"):
        build_model("resnet", layout="signal", input_shape=(4,), n_classes=2, seed=0)
