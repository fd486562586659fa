"""NatMU's properties (docs/method.md, "The method")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nmu
from nmu.natmu import assign_injections, make_hybrids, masks
from nmu.train import accuracy
from nmu.unlearn import Task


def test_masks_values_and_means():
    m0 = masks(32, 0.0)
    assert m0.shape == (4, 32, 32) and m0.min() >= 0 and m0.max() <= 1
    assert m0.mean((1, 2)).tolist() == pytest.approx([0.46875] * 4)
    assert masks(32, -0.19).mean().item() == pytest.approx(0.3028, abs=1e-4)
    # P1 varies along rows only and is 0 on the border rows, 15/16 on the two centre rows
    assert torch.equal(m0[0], m0[0][:, :1].expand(32, 32))
    assert m0[0, 0, 5] == 0 and m0[0, 15, 3] == pytest.approx(15 / 16) and m0[0, 16, 3] == pytest.approx(15 / 16)
    assert torch.allclose(m0[1], m0[0].T) and torch.allclose(m0[2], 15 / 16 - m0[0])
    assert torch.allclose(m0[3], 15 / 16 - m0[1])
    assert masks(32, 0.99).min() >= 0.99 and masks(32, -0.93).max() < 0.01  # clipped, not yet constant
    assert masks((8, 6), 0.1).shape == (4, 8, 6)


class FixedLogits(nn.Module):
    """Maps an image to the logit row stored for its first pixel value (to control class ranks)."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]


def _toy(n_forget=6, per_class=20, classes=5):
    forget_images = torch.arange(n_forget, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    forget_labels = torch.arange(n_forget) % classes
    retain_labels = torch.arange(classes).repeat_interleave(per_class)
    retain_images = torch.full((len(retain_labels), 1, 4, 4), 200, dtype=torch.uint8)
    retain_images[:, 0, 0, 0] = 100  # any row of the logit table works for D_r
    return forget_images, forget_labels, retain_images, retain_labels


def _model(classes=5, rows=256, seed=0):
    return FixedLogits(torch.randn(rows, classes, generator=torch.Generator().manual_seed(seed)) * 3)


def test_hybrids_count_labels_distinct_images_and_determinism():
    fx, fy, rx, ry = _toy()
    model = _model()
    h = make_hybrids(model, fx, fy, rx, ry, k=4, delta=0.0, seed=1, device="cpu")
    assert len(h.labels) == 4 * len(fy) and h.images.dtype == torch.uint8
    assert len(np.unique(h.retain_index)) == len(h.retain_index)  # no remaining image used twice
    assert (h.labels.numpy() != fy.numpy()[h.forget_index]).all()  # never the own class
    assert torch.equal(h.labels, ry[torch.from_numpy(h.retain_index)])  # label = injected image's class
    # with plenty of supply, hybrid k uses the k-th most probable other class
    p = model(fx.float() / 255).softmax(1)
    p[torch.arange(len(fy)), fy] = -1
    expected = p.argsort(dim=1, descending=True)[:, :4].numpy()
    got = h.labels.numpy().reshape(len(fy), 4)
    assert (got == expected).all() and (h.mask_index.reshape(-1, 4) == np.arange(4)).all()
    again = make_hybrids(model, fx, fy, rx, ry, k=4, delta=0.0, seed=1, device="cpu")
    assert torch.equal(again.images, h.images) and np.array_equal(again.retain_index, h.retain_index)
    other = make_hybrids(model, fx, fy, rx, ry, k=4, delta=0.0, seed=2, device="cpu")
    assert not np.array_equal(other.retain_index, h.retain_index)


def test_blend_is_mask_weighted_in_pixel_space():
    fx, fy, rx, ry = _toy(n_forget=1)
    h = make_hybrids(_model(), fx, fy, rx, ry, k=4, delta=-0.19, seed=0, device="cpu")
    m = masks(4, -0.19)
    for j in range(4):
        expected = (m[h.mask_index[j]] * fx[0, 0].float() + (1 - m[h.mask_index[j]]) * rx[h.retain_index[j], 0].float())
        assert torch.equal(h.images[j, 0], expected.round().to(torch.uint8))


def test_a_popular_class_that_runs_out_falls_back_to_the_next_class():
    # Every sample ranks class 1 first; D_r holds only 3 images of class 1.
    ranked = np.tile(np.array([[1, 2, 3, 4]]), (5, 1))
    probs = np.tile(np.array([[0.5, 0.2, 0.1, 0.05]]), (5, 1))
    probs[:, 0] = [0.5, 0.9, 0.1, 0.8, 0.3]
    retain_labels = np.array([1] * 3 + [2] * 10 + [3] * 10 + [4] * 10 + [0] * 10)
    fi, slot, ri = assign_injections(ranked, probs, retain_labels, k=2, seed=0)
    cls = retain_labels[ri]
    assert len(np.unique(ri)) == len(ri) == 10 and (cls != 0).all()
    got_class1 = sorted(fi[cls == 1].tolist())
    assert got_class1 == [0, 1, 3]  # the three samples that find class 1 most probable
    for i in (2, 4):
        assert sorted(cls[fi == i].tolist()) == [2, 3]  # fell back to their next classes


def test_fewer_other_classes_than_k():
    # Binary task: one other class, K = 4 hybrids all from it, distinct images.
    ranked, probs = np.array([[1], [0]]), np.array([[1.0], [1.0]])
    retain_labels = np.array([0] * 5 + [1] * 5)
    fi, slot, ri = assign_injections(ranked, probs, retain_labels, k=4, seed=0)
    assert len(ri) == 8 and len(np.unique(ri)) == 8
    assert (retain_labels[ri[fi == 0]] == 1).all() and (retain_labels[ri[fi == 1]] == 0).all()
    assert sorted(slot[fi == 0].tolist()) == [0, 1, 2, 3]


def test_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        assign_injections(np.zeros((0, 3), dtype=int), np.zeros((0, 3)), np.array([0, 1]), k=4, seed=0)
    with pytest.raises(ValueError, match="distinct remaining images"):
        assign_injections(np.array([[1]]), np.array([[1.0]]), np.array([0, 1, 1]), k=4, seed=0)
    fx, fy, rx, ry = _toy()
    with pytest.raises(ValueError, match="k must be"):
        make_hybrids(_model(), fx, fy, rx, ry, k=0, device="cpu")


def test_natmu_unlearns_on_smoke_data(smoke):
    d, original = smoke.data, smoke.original().model
    split = smoke.split("class", cls=3)
    task = Task(original, d, split)
    before = accuracy(original, task.forget_images, task.forget_labels)
    result = nmu.unlearn("natmu", original, d, split, lr=5e-3, weight_decay=0.0, delta=-0.1, seed=0,
                         head_reinit=True)
    after = accuracy(result.model, task.forget_images, task.forget_labels)
    assert before > 80 and after < 20 and result.seconds > 0
    assert accuracy(result.model, task.retain_images, task.retain_labels) > 80
    assert accuracy(original, task.forget_images, task.forget_labels) == before  # original untouched
    with pytest.raises(TypeError, match="does not take"):
        nmu.unlearn("natmu", original, d, split, learning_rate=1.0)


@pytest.mark.parametrize("delta", [1.0, 1.5, -0.95, -2.0])
def test_a_delta_that_makes_every_mask_constant_is_rejected(delta):
    """delta >= 1 gives all-1 masks (the forgetting image relabelled: RL), delta <= -(b-1)/b all-0
    masks (the injected image alone): neither is NatMU."""
    with pytest.raises(ValueError, match="every mask constant"):
        masks(32, delta)
    masks(32, 0.9)  # still graded near the border
    masks(32, -0.9)  # 32 px: (b-1)/b = 0.9375, so the centre lines keep a little of x_f
