"""Architectures, normalisation inside the model, reproducible initialisation."""

from __future__ import annotations

import pytest
import torch

from nmu.models import ARCHS, build_model, count_parameters, reset_head

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_maps_images_to_logits(arch):
    model = build_model(arch, 7, MEAN, STD, seed=0).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 7


def test_sizes_match_the_papers_architectures():
    assert build_model("vgg16_bn", 10, MEAN, STD).head.in_features == 512
    assert 11.0e6 < count_parameters(build_model("resnet18", 100, MEAN, STD)) < 11.3e6
    assert 21.2e6 < count_parameters(build_model("resnet34", 200, MEAN, STD)) < 21.5e6
    assert 0.5e6 < count_parameters(build_model("smallcnn", 10, MEAN, STD)) < 0.6e6
    assert 0.13e6 < count_parameters(build_model("smallcnn16", 10, MEAN, STD)) < 0.14e6
    conv_layers = [m for m in build_model("vgg16_bn", 10, MEAN, STD).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(conv_layers) == 13


def test_normalisation_is_inside_the_model():
    model = build_model("tinycnn", 3, MEAN, STD, seed=0)
    x = torch.tensor(MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(model.normalize(x), torch.zeros(1, 3, 4, 4), atol=1e-6)
    assert "normalize.mean" in model.state_dict()


def test_seeded_init_is_reproducible_and_does_not_touch_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("tinycnn", 5, MEAN, STD, seed=1)
    assert torch.rand(1) == before  # global RNG untouched
    b = build_model("tinycnn", 5, MEAN, STD, seed=1)
    c = build_model("tinycnn", 5, MEAN, STD, seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["head.weight"], sc["head.weight"])


def test_reset_head_changes_only_the_head():
    model = build_model("tinycnn", 5, MEAN, STD, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reset_head(model, seed=9)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight"}  # the trained bias is kept, as the reference


def test_reset_head_is_xavier_normal_with_the_relu_gain_and_reproducible():
    model = build_model("smallcnn", 100, MEAN, STD, seed=0)  # head: Linear(256, 100), 25,600 weights
    bias = model.head.bias.detach().clone()
    reset_head(model, seed=3)
    w = model.head.weight.detach()
    expected = torch.nn.init.calculate_gain("relu") * (2 / (256 + 100)) ** 0.5
    assert abs(w.std().item() / expected - 1) < 0.03
    assert abs(w.mean().item()) < 0.05 * expected
    assert torch.equal(model.head.bias, bias)
    again = build_model("smallcnn", 100, MEAN, STD, seed=0)
    reset_head(again, seed=3)
    assert torch.equal(again.head.weight, w)
    reset_head(again, seed=4)
    assert not torch.equal(again.head.weight, w)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("resnet1000", 10, MEAN, STD)
