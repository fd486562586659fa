"""The training loop: augmentation, schedules, determinism, per-sample losses."""

from __future__ import annotations

import pytest
import torch

from nmu.models import build_model
from nmu.train import Recipe, accuracy, augment, fit, lr_factor, predict


def _batch(b=6, c=2, h=5, w=7):
    return torch.arange(b * c * h * w, dtype=torch.int32).view(b, c, h, w).to(torch.uint8)


def test_augment_without_padding_or_flip_is_identity():
    x = _batch()
    assert torch.equal(augment(x, 0, False, torch.Generator().manual_seed(0)), x)


def test_augment_crops_windows_of_the_zero_padded_image_and_flips():
    x = _batch(b=64)
    out = augment(x, 2, True, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, dy:dy + 5, dx:dx + 7] for dy in range(5) for dx in range(5)]
        candidates = windows + [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in candidates)
    assert sum(torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))) > 0  # some centred flips
    assert not torch.equal(out, x)


def test_augment_keeps_marked_rows():
    x = _batch(b=8)
    keep = torch.tensor([True, False] * 4)
    out = augment(x, 3, True, torch.Generator().manual_seed(1), keep=keep)
    assert torch.equal(out[keep], x[keep])


def test_step_schedule_with_warmup():
    r = Recipe(epochs=10, lr=0.1, warmup_epochs=2, milestones=(0.6, 0.8))
    f = [lr_factor(r, s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.05) and f[19] == pytest.approx(1.0)
    assert f[59] == 1.0 and f[60] == pytest.approx(0.1) and f[80] == pytest.approx(0.01)


def test_cosine_schedule_decays_to_zero():
    r = Recipe(epochs=5, lr=1e-3, optimizer="adamw", schedule="cosine")
    f = [lr_factor(r, s, 50, 10) for s in range(50)]
    assert f[0] == 1.0 and f[25] == pytest.approx(0.5) and f[-1] < 0.01
    assert all(a >= b for a, b in zip(f, f[1:]))


def test_bad_recipe_and_inputs():
    with pytest.raises(ValueError, match="optimizer"):
        Recipe(epochs=1, lr=0.1, optimizer="adam")
    model = build_model("tinycnn", 3, (0.5,), (0.2,), seed=0)
    with pytest.raises(TypeError, match="uint8"):
        fit(model, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), Recipe(epochs=1, lr=0.1), seed=0)
    with pytest.raises(ValueError, match="as many labels"):
        fit(model, torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long),
            Recipe(epochs=1, lr=0.1), seed=0)


def _train(smoke, seed, precision="auto"):
    d = smoke.data
    model = smoke.new_model()
    result = fit(model, d.train_images, d.train_labels, smoke.recipe.with_(epochs=3), seed=seed,
                 device="cpu", precision=precision, record_losses=True)
    return model, result


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_same_seed_gives_bitwise_identical_weights(smoke, precision):
    a, ra = _train(smoke, seed=5, precision=precision)
    b, rb = _train(smoke, seed=5, precision=precision)
    c, _ = _train(smoke, seed=6, precision=precision)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(ra.sample_loss, rb.sample_loss)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_training_learns_and_records_per_sample_losses(smoke):
    d = smoke.data
    original = smoke.original()
    assert accuracy(original.model, d.test_images, d.test_labels) > 80
    loss = original.sample_loss
    assert loss.shape == (len(d.train_labels),) and (loss > 0).all()
    # samples the model still gets wrong had a higher mean training loss
    wrong = predict(original.model, d.train_images).argmax(1) != d.train_labels
    assert loss[wrong].mean() > loss[~wrong].mean()


def _nan_at(step: int):
    """A cross-entropy loss that turns NaN at training step ``step`` (0-based); counts its calls."""
    calls = []

    def loss(model, x, y, idx):
        calls.append(1)
        out = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
        return out * float("nan") if len(calls) == step + 1 else out
    return loss, calls


def _tiny_fit(recipe, loss_fn=None, desc="train"):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (32,), generator=g)
    model = build_model("tinycnn", 3, (0.5,), (0.2,), seed=0)
    return fit(model, images, labels, recipe, seed=0, loss_fn=loss_fn, device="cpu", desc=desc)


def test_a_nan_loss_stops_training_at_that_step():
    from nmu import train

    loss_fn, calls = _nan_at(5)  # 4 steps per epoch: step 5 is in epoch 2
    recipe = Recipe(epochs=3, lr=0.2, batch_size=8, schedule="constant")
    with pytest.raises(FloatingPointError, match=r"probe-run.*nan at epoch 2, step 5 \(learning rate 0\.2\).*"
                                                 r"Lower the learning rate") as err:
        _tiny_fit(recipe, loss_fn, desc="probe-run")
    assert len(calls) == 6  # stopped at once, not at the end of the run
    assert isinstance(err.value, train.NonFiniteLossError) and (err.value.step, err.value.epoch) == (5, 2)


def test_on_a_gpu_the_nan_check_is_deferred_but_names_the_first_bad_step(monkeypatch):
    from nmu import train

    monkeypatch.setattr(train, "finite_check_every", lambda device: 4)  # as on a GPU, with N = 4
    recipe = Recipe(epochs=3, lr=0.2, batch_size=8, schedule="cosine")
    loss_fn, calls = _nan_at(5)
    with pytest.raises(FloatingPointError, match="nan at epoch 2, step 5") as err:
        _tiny_fit(recipe, loss_fn)
    assert len(calls) == 8 and err.value.lr == pytest.approx(0.2 * lr_factor(recipe, 5, 12, 4))
    loss_fn, calls = _nan_at(13)  # 5 steps per epoch, checks after steps 3, 7, 11: caught at the end
    with pytest.raises(FloatingPointError, match="epoch 3, step 13"):
        _tiny_fit(recipe.with_(batch_size=7), loss_fn)
    assert len(calls) == 15


def test_a_diverging_learning_rate_is_reported():
    with pytest.raises(FloatingPointError, match="Lower the learning rate"):
        _tiny_fit(Recipe(epochs=3, lr=1e30, batch_size=8))


def test_check_finite_helper():
    from nmu.train import NonFiniteLossError, check_finite

    check_finite(torch.tensor(2.5), "scrub", 0, 0.1)
    check_finite(torch.tensor([1.0, 2.0]), "scrub", 0, 0.1)
    with pytest.raises(NonFiniteLossError, match=r"scrub: the training loss became inf at step 3 "
                                                 r"\(learning rate 0\.05\)"):
        check_finite(torch.tensor(float("inf")), "scrub", 3, 0.05)
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 7"):
        check_finite(float("nan"), "scrub", 7, 0.05, epoch=2)


def test_cuda_graphs_switch(monkeypatch):
    from nmu.train import cuda_graphs, cudnn_mode, gpu_mode

    monkeypatch.delenv("NMU_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("NMU_CUDNN", raising=False)
    assert cuda_graphs() and cudnn_mode() == "deterministic"
    assert gpu_mode(torch.device("cpu")) is None
    assert gpu_mode(torch.device("cuda")) == {"cudnn": "deterministic", "cuda_graphs": True}
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "0")
    monkeypatch.setenv("NMU_CUDNN", "benchmark")
    assert gpu_mode(torch.device("cuda")) == {"cudnn": "benchmark", "cuda_graphs": False}
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "yes")
    with pytest.raises(ValueError, match="NMU_CUDA_GRAPHS='yes'"):
        cuda_graphs()
    monkeypatch.setenv("NMU_CUDNN", "fast")
    with pytest.raises(ValueError, match="NMU_CUDNN='fast'"):
        cudnn_mode()


def test_a_cpu_run_is_never_graphed(smoke):
    d = smoke.data
    model = build_model("tinycnn", d.num_classes, d.mean, d.std, seed=0)
    result = fit(model, d.train_images[:64], d.train_labels[:64], Recipe(epochs=1, lr=0.01, batch_size=16),
                 seed=0, device="cpu", progress=False)
    assert not result.graphed and result.steps == 4


def captured_and_reference_steps(smoke, optimizer: str, reference, lrs, **kw):
    """Run GraphedStep's step eagerly on the CPU (the capture itself needs a GPU) and ``reference``,
    a torch optimiser over a copy of the same model, at each learning rate of ``lrs``; returns both
    models after asserting that every step's per-sample losses agree."""
    import copy

    import torch.nn.functional as F

    from nmu.graphs import GraphedStep

    d = smoke.data
    ours = build_model("tinycnn", d.num_classes, d.mean, d.std, seed=0).train()
    theirs = copy.deepcopy(ours)
    x, y = d.train_images[:16].float().div(255), d.train_labels[:16]
    step = GraphedStep(ours, tuple(x.shape), momentum=0.9, amp=False, optimizer=optimizer, **kw)
    opt = reference(theirs.parameters())
    for lr in lrs:
        step.x.copy_(x), step.y.copy_(y), step.lr.fill_(lr)
        for p in step.params:
            p.grad = None
        losses = step.step_eagerly()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        expected = F.cross_entropy(theirs(x), y, reduction="none", label_smoothing=kw["label_smoothing"])
        expected.mean().backward()
        opt.step()
        torch.testing.assert_close(losses, expected.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    return step


def test_the_captured_step_is_an_sgd_step(smoke):
    captured_and_reference_steps(
        smoke, "sgd", lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4),
        (0.05, 0.02, 0.01), weight_decay=5e-4, label_smoothing=0.1)


def test_the_captured_step_is_an_adamw_step(smoke):
    """With AdamW (NatMU's fine-tuning): bias correction and decoupled weight decay included, over
    learning rates that change every step."""
    step = captured_and_reference_steps(
        smoke, "adamw", lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=2e-3),
        (1e-3, 8e-4, 5e-4, 2e-4, 1e-4), weight_decay=2e-3, label_smoothing=0.0)
    assert step.step_count.item() == 5
    with pytest.raises(ValueError, match="'sgd' or 'adamw'"):
        type(step)(step.model, tuple(step.x.shape), momentum=0.9, weight_decay=0.0, label_smoothing=0.0, amp=False,
                   optimizer="adam")


def test_nmu_precision_fixes_the_automatic_choice(monkeypatch):
    from nmu.train import resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.delenv("NMU_PRECISION", raising=False)  # the suite may run under it
    native = resolve_precision("auto", cpu)
    for forced in ("fp32", "bf16"):
        monkeypatch.setenv("NMU_PRECISION", forced)
        assert resolve_precision("auto", cpu) == forced
        assert resolve_precision("fp32", cpu) == "fp32"  # an explicit choice wins
    monkeypatch.setenv("NMU_PRECISION", "fp16")
    with pytest.raises(ValueError, match="NMU_PRECISION='fp16': use bf16 or fp32"):
        resolve_precision("auto", cpu)
    monkeypatch.delenv("NMU_PRECISION")
    assert resolve_precision("auto", cpu) == native
