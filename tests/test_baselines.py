"""Baselines on the smoke experiment (digits + tinycnn): each one moves forget accuracy the expected
way, runs are reproducible, and the method-specific invariants hold (RL's wrong labels, SalUn's
mask, SSD's selection, Boundary Shrink's labels, the incompetent teacher, head re-initialisation)."""

from __future__ import annotations

import copy

import pytest
import torch

import nmu.baselines  # noqa: F401  (fills METHODS)
from nmu.baselines import (boundary_labels, incompetent_teacher, random_wrong_labels, saliency_mask)
from nmu.models import reset_head
from nmu.splits import Split
from nmu.train import accuracy
from nmu.unlearn import METHODS, unlearn

ALL = ["ft", "ga", "rl", "badteacher", "salun", "l1sparse", "scrub", "ssd", "bs"]

# Test settings: a few epochs at learning rates large enough to show the effect on 8x8 digits.
FORGETTING = {
    "ga": dict(lr=1e-3, epochs=2, batch_size=32),
    "rl": dict(lr=3e-3, epochs=3),
    "badteacher": dict(lr=3e-3, epochs=3, temperature=1.0),
    "salun": dict(lr=3e-3, epochs=3, ratio=0.3),
    "bs": dict(lr=3e-3, epochs=3),
    "scrub": dict(lr=3e-3, epochs=3, max_epochs=2),
    "ssd": dict(alpha=5.0),
}


@pytest.fixture(scope="module")
def class_split(smoke):
    return smoke.split("class", cls=3)


@pytest.fixture(scope="module")
def random_split(smoke):
    return smoke.split("random", fraction=0.1)


def run(smoke, method, split, **hp):
    return unlearn(method, smoke.original().model, smoke.data, split, seed=0, progress=False,
                   crop_padding=smoke.recipe.crop_padding, **hp).model


def acc(smoke, model, idx):
    i = torch.from_numpy(idx)
    return accuracy(model, smoke.data.train_images[i], smoke.data.train_labels[i])


def weights(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def test_all_methods_registered_with_keyword_hyperparameters():
    import inspect
    assert set(ALL) <= set(METHODS)
    for name in ALL:
        params = list(inspect.signature(METHODS[name]).parameters.values())
        assert params[0].name == "task"
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in params[1:]), name
        assert METHODS[name].__doc__


@pytest.mark.parametrize("method", sorted(FORGETTING))
def test_forgetting_a_class_lowers_forget_accuracy(smoke, class_split, method):
    before = acc(smoke, smoke.original().model, class_split.forget)
    model = run(smoke, method, class_split, **FORGETTING[method])
    assert before > 80
    assert acc(smoke, model, class_split.forget) < before - 30, method
    if method != "ga":  # GA alone has no remaining-data term
        assert acc(smoke, model, class_split.retain) > 50, method


def test_retrain_never_saw_the_class_and_is_no_method(smoke, class_split):
    model = smoke.retrain(class_split).model
    assert acc(smoke, model, class_split.forget) < 5
    assert acc(smoke, model, class_split.retain) > 85
    with pytest.raises(ValueError, match="unknown method 'retrain'"):
        unlearn("retrain", smoke.original().model, smoke.data, class_split, progress=False)


@pytest.mark.parametrize("method", ["ft", "l1sparse"])
def test_finetuning_keeps_remaining_accuracy(smoke, random_split, method):
    before = acc(smoke, smoke.original().model, random_split.retain)
    model = run(smoke, method, random_split, lr=1e-3, epochs=2)
    assert acc(smoke, model, random_split.retain) > before - 5


def test_l1_penalty_shrinks_the_weights(smoke, random_split):
    def l1(m):
        return sum(p.abs().sum().item() for p in m.parameters())
    hp = dict(lr=1e-3, epochs=2, weight_decay=0.0)
    assert l1(run(smoke, "l1sparse", random_split, gamma=0.05, **hp)) < 0.9 * l1(run(smoke, "ft", random_split, **hp))


def test_same_seed_same_weights_and_original_untouched(smoke, random_split):
    original = smoke.original().model
    before = weights(original)
    a, b = (weights(run(smoke, "rl", random_split, lr=1e-3, epochs=1)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], before[k]) for k in a)
    for method in ("salun", "scrub", "ssd"):
        run(smoke, method, random_split, **({"alpha": 2.0} if method == "ssd" else {"lr": 1e-3, "epochs": 1}))
    after = weights(original)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_random_wrong_labels_are_never_the_own_label():
    y = torch.arange(10).repeat(100)
    wrong = random_wrong_labels(y, 10, seed=0)
    assert not (wrong == y).any()
    assert wrong.min() >= 0 and wrong.max() <= 9 and len(wrong.unique()) == 10
    assert torch.equal(wrong, random_wrong_labels(y, 10, seed=0))
    assert not torch.equal(wrong, random_wrong_labels(y, 10, seed=1))


def test_salun_moves_only_the_masked_weights(smoke, random_split):
    ratio = 0.2
    original = smoke.original().model
    f = torch.from_numpy(random_split.forget)
    masks = saliency_mask(original, smoke.data.train_images[f], smoke.data.train_labels[f], ratio,
                          device=next(original.parameters()).device)
    total = sum(m.numel() for m in masks)
    assert sum(int(m.sum()) for m in masks) == round(ratio * total)
    model = run(smoke, "salun", random_split, lr=1e-3, epochs=1, weight_decay=0.1, ratio=ratio)
    moved = [(p.detach() != q.detach()).cpu()
             for p, q in zip(model.parameters(), original.parameters())]
    assert all(not (mv & ~m.cpu()).any() for mv, m in zip(moved, masks))  # nothing outside the mask
    assert sum(int(mv.sum()) for mv in moved) >= 0.8 * ratio * total     # most of the mask moved
    with pytest.raises(ValueError, match="ratio"):
        run(smoke, "salun", random_split, ratio=0.0)


def test_ssd_changes_nothing_when_no_importance_stands_out(smoke, random_split):
    before = weights(smoke.original().model)
    with pytest.warns(UserWarning, match="alpha"):
        model = run(smoke, "ssd", random_split, alpha=1e9)
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_boundary_labels_are_other_classes(smoke, class_split):
    original = smoke.original().model
    f = torch.from_numpy(class_split.forget)
    y = smoke.data.train_labels[f]
    labels = boundary_labels(original, smoke.data.train_images[f], y, 8 / 255,
                             device=next(original.parameters()).device)
    assert labels.shape == y.shape and labels.dtype == torch.int64
    assert not (labels == y).any()


def test_incompetent_teacher_is_random_frozen_and_reproducible(smoke):
    original = smoke.original().model
    a, b = incompetent_teacher(original, 0), incompetent_teacher(original, 0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), original.parameters()))
    assert not any(p.requires_grad for p in a.parameters()) and not a.training


def test_head_reinit(smoke, random_split):
    model = run(smoke, "rl", random_split, epochs=0, head_reinit=True)
    expected = copy.deepcopy(smoke.original().model)
    reset_head(expected, 0)
    assert torch.equal(model.head.weight, expected.head.weight)
    assert torch.equal(model.features[0].weight, expected.features[0].weight)


def test_bad_input_is_rejected(smoke, random_split):
    n = len(smoke.data.train_labels)
    empty = Split("random", torch.arange(0).numpy(), torch.arange(n).numpy())
    with pytest.raises(ValueError, match="empty"):
        run(smoke, "rl", empty)
    with pytest.raises(ValueError, match="temperature"):
        run(smoke, "badteacher", random_split, temperature=0.0)
    with pytest.raises(TypeError, match="does not take"):
        run(smoke, "ga", random_split, ratio=0.5)
