"""The baselines NatMU is compared with (docs/method.md, "Baselines"), registered in
:data:`nmu.unlearn.METHODS`. Retraining, the gold standard, is :meth:`nmu.Experiment.retrain`.

==============  ===============================================================================
``ft``          fine-tune on D_r only
``ga``          gradient ascent on D_f
``rl``          Random Labels / Amnesiac: fine-tune on D_r + D_f with a random wrong label each
``badteacher``  distil from the original (D_r) and a random network (D_f)
``salun``       RL restricted to the weights most salient for the D_f loss
``l1sparse``    FT with a linearly decaying l1 penalty on the weights
``scrub``       SCRUB: alternate KL max-steps on D_f and KL + CE min-steps on D_r
``ssd``         Selective Synaptic Dampening: no training, dampen D_f-specific weights
``bs``          Boundary Shrink: relabel D_f to its FGSM neighbour's class, fine-tune
==============  ===============================================================================

Shared policy (the same as NatMU's):

- fine-tuning is :meth:`nmu.unlearn.Task.finetune`, the one unlearning stream: D_r with crop + flip,
  then the method's extra samples (relabelled D_f, D_f for ascent or distillation) as they are,
  shuffled together; the loss function tells them apart by the batch indices. AdamW, per-step
  cosine decay to 0, 5 epochs unless the method's own paper says otherwise (FT and l1-sparse: 10,
  as in Jia et al. 2023);
- importance, saliency and adversarial statistics (SalUn, SSD, Boundary Shrink) are computed once,
  with the original model in eval mode, in float32, on un-augmented images.

Defaults are the NatMU reference's CIFAR-10 settings where it has them (RL, BadTeacher, SalUn),
else the method's paper, adapted to AdamW; the YAML presets override them per setting.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nmu.train import (FINITE_CHECK_EVERY, LossFn, Recipe, augment, check_finite, lr_factor, make_optimizer,
                       shuffled_batches, steps_per_epoch)
from nmu.unlearn import Task, frozen, register

# ----------------------------------------------------------------------------------------- helpers

def _need_classes(task: Task, method: str) -> None:
    if task.num_classes < 2:
        raise ValueError(f"{method} relabels forgetting samples to another class: it needs at least "
                         f"2 classes, the dataset has {task.num_classes}")


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v}")


def _kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-sample KL(teacher || student) of the temperature-softened distributions (float32)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(1)


def _chunks(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Un-augmented float batches in [0, 1] on ``device``, in order."""
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        yield x.to(device).float().div_(255), y.to(device)


def _mean_loss_grad(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                    device: torch.device) -> list[torch.Tensor]:
    """Gradient of the mean cross-entropy over a set w.r.t. every trainable parameter (eval mode,
    float32, no augmentation), accumulated batch by batch; ``.grad`` is left untouched."""
    params = [p for p in model.parameters() if p.requires_grad]
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    was_training = model.training
    model.eval()
    for x, y in _chunks(images, labels, batch_size, device):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), params, allow_unused=True)
        for a, g in zip(acc, grads):
            if g is not None:
                a.add_(g.float())
    model.train(was_training)
    return [a.div_(len(labels)) for a in acc]


def diagonal_fisher(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, device: torch.device,
                    chunk: int = 32) -> list[torch.Tensor]:
    """Empirical diagonal Fisher information of a set: the mean over samples of the squared
    per-sample cross-entropy gradient, one tensor per trainable parameter (eval mode, float32, no
    augmentation). Per-sample gradients come from ``torch.func.vmap`` over ``chunk`` samples at a
    time (``chunk`` x #parameters floats of memory; the result does not depend on it)."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    was_training = model.training
    model.eval()

    def sample_loss(trainable: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**params, **trainable}, buffers), (x[None],))
        return F.cross_entropy(out.float(), y[None])

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    acc = {n: torch.zeros_like(params[n], dtype=torch.float32) for n in names}
    for x, y in _chunks(images, labels, chunk, device):
        grads = per_sample({n: params[n] for n in names}, x, y)
        for n in names:
            acc[n].add_(grads[n].float().square().sum(0))
    model.train(was_training)
    return [acc[n].div_(len(labels)) for n in names]


# ----------------------------------------------------------------------------------------- methods

@register("ft")
def ft(task: Task, *, lr: float = 1e-3, weight_decay: float = 5e-4, epochs: int = 10,
       batch_size: int = 128) -> nn.Module:
    """FT (fine-tuning, e.g. Warnecke et al. 2023; Jia et al. 2023): keep training the original on
    D_r only, relying on catastrophic forgetting. 10 epochs as in Jia et al.; their SGD lr of
    0.01-0.1 is far too large for AdamW, so the default is 1e-3."""
    task.finetune(lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, desc="ft")
    return task.model


@register("ga")
def ga(task: Task, *, lr: float = 1e-5, weight_decay: float = 0.0, epochs: int = 5,
       batch_size: int = 128) -> nn.Module:
    """GA (gradient ascent, Thudi et al. 2022; Graves et al. 2021): maximise the cross-entropy of
    D_f (minimise its negative) with a small learning rate; D_r is not used."""
    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        return lambda model, x, y, idx: -F.cross_entropy(model(x), y, reduction="none")
    task.finetune(task.forget_images, task.forget_labels, retain=False, lr=lr, weight_decay=weight_decay,
                  epochs=epochs, batch_size=batch_size, loss_fn=loss_fn, desc="ga")
    return task.model


def random_wrong_labels(labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """One label per sample drawn uniformly from the classes other than its own (seeded)."""
    shift = torch.randint(1, num_classes, labels.shape, generator=torch.Generator().manual_seed(seed))
    return (labels + shift) % num_classes


@register("rl")
def rl(task: Task, *, lr: float = 1.8e-5, weight_decay: float = 4e-4, epochs: int = 5, batch_size: int = 128,
       head_reinit: bool = False) -> nn.Module:
    """RL / Amnesiac (Graves et al. 2021; Golatkar et al. 2020): give each D_f sample one random wrong
    label (fixed per sample, drawn with the task seed) and fine-tune on D_r + relabelled D_f shuffled
    together. ``head_reinit`` first re-initialises the final linear layer (sub-class settings)."""
    _need_classes(task, "rl")
    labels = random_wrong_labels(task.forget_labels, task.num_classes, task.seed)
    if head_reinit:
        task.reset_head()
    task.finetune(task.forget_images, labels, lr=lr, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, desc="rl")
    return task.model


def incompetent_teacher(model: nn.Module, seed: int) -> nn.Module:
    """A frozen copy of ``model`` with every parameter and buffer re-initialised under ``seed``
    (``reset_parameters`` of each layer; BatchNorm statistics back to 0 / 1), as BadTeacher's
    untrained network."""
    teacher = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in teacher.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return frozen(teacher)


@register("badteacher")
def badteacher(task: Task, *, lr: float = 5e-5, weight_decay: float = 9e-4, epochs: int = 5,
               batch_size: int = 128, temperature: float = 7.2, head_reinit: bool = False) -> nn.Module:
    """BadTeacher (Chundawat et al., AAAI 2023): the student (the original) distils the competent
    teacher (a frozen copy of the original) on D_r and an incompetent teacher (the same architecture
    with all weights randomly re-initialised under the task seed, BatchNorm statistics reset, as the
    paper's untrained network) on D_f. Loss: KL(teacher || student) of the softmax at ``temperature``,
    without the T^2 factor (as in the paper's code). D_r and D_f are mixed in one shuffled stream (all
    of D_r, not the paper's 30 % subset, like the other baselines); both teachers see the same
    augmented batch. ``head_reinit`` re-initialises the student's head first (full-class setting)."""
    _check_positive(temperature=temperature)
    good = task.frozen_copy()
    bad = incompetent_teacher(task.model, task.seed)
    if head_reinit:
        task.reset_head()

    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            f = is_forget[idx].to(x.device)
            with torch.no_grad():
                target = torch.empty(len(x), task.num_classes, device=x.device)
                if f.any():
                    target[f] = bad(x[f]).float()
                if not f.all():
                    target[~f] = good(x[~f]).float()
            return _kl(model(x), target, temperature)
        return loss

    task.finetune(task.forget_images, task.forget_labels, lr=lr, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, loss_fn=loss_fn, desc="badteacher")
    return task.model


def saliency_mask(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, ratio: float, *,
                  device: torch.device, batch_size: int = 256) -> list[torch.Tensor]:
    """SalUn's weight saliency: bool masks (one per trainable parameter) selecting the ``ratio``
    fraction of all weights with the largest |gradient of the mean cross-entropy over the set|
    (one global ranking over every parameter tensor; exactly round(ratio * #weights), at least 1)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    grads = _mean_loss_grad(model, images, labels, batch_size=batch_size, device=device)
    flat = torch.cat([g.abs().flatten() for g in grads])
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[flat.topk(max(1, round(ratio * flat.numel())), sorted=False).indices] = True
    return [m.view_as(g) for m, g in zip(keep.split([g.numel() for g in grads]), grads)]


@register("salun")
def salun(task: Task, *, lr: float = 5e-5, weight_decay: float = 3e-4, epochs: int = 5, batch_size: int = 128,
          ratio: float = 0.05) -> nn.Module:
    """SalUn (Fan et al., ICLR 2024): saliency mask = the top ``ratio`` of all weights by |gradient of the
    D_f cross-entropy| (eval mode, no augmentation, one global threshold), then RL (random wrong labels
    on D_f + D_r) where only the masked weights change.

    Unmasked weights are frozen exactly: a tensor hook zeroes their gradients (so AdamW's moments, and
    its update, stay 0 there), and AdamW's decoupled weight decay, which would still shrink them, is
    undone by restoring their original values before every forward pass and once at the end. Masked
    weights get the full AdamW update including decay. Buffers (BatchNorm statistics) are not weights
    and keep updating, as in SalUn."""
    _need_classes(task, "salun")
    model = task.model.to(memory_format=torch.channels_last)  # fit's layout change is then a no-op
    params = [p for p in model.parameters() if p.requires_grad]
    masks = saliency_mask(model, task.forget_images, task.forget_labels, ratio, device=task.device)
    originals = [p.detach().clone() for p in params]
    hooks = [p.register_hook(lambda g, m=m: g * m.to(g.dtype)) for p, m in zip(params, masks)]

    def restore() -> None:
        with torch.no_grad():
            for p, m, o in zip(params, masks, originals):
                p.copy_(torch.where(m, p, o))

    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            restore()
            return F.cross_entropy(model(x), y, reduction="none")
        return loss

    labels = random_wrong_labels(task.forget_labels, task.num_classes, task.seed)
    try:
        task.finetune(task.forget_images, labels, lr=lr, weight_decay=weight_decay, epochs=epochs,
                      batch_size=batch_size, loss_fn=loss_fn, desc="salun")
    finally:
        for h in hooks:
            h.remove()
    restore()
    return model


@register("l1sparse")
def l1sparse(task: Task, *, lr: float = 1e-3, weight_decay: float = 5e-4, epochs: int = 10,
             batch_size: int = 128, gamma: float = 5e-4) -> nn.Module:
    """l1-sparse (Jia et al., NeurIPS 2023, "Model sparsity can simplify machine unlearning"): FT on
    D_r with the penalty ``gamma * (1 - t/T) * sum |w|`` over all parameters, decaying linearly from
    ``gamma`` to 0 over the T optimiser steps of the run (per step; the paper decays per epoch). The
    scalar penalty is added to every sample's loss, so the batch mean carries it once."""
    n = len(task.split.retain)
    total = steps_per_epoch(n, batch_size) * epochs
    step = [0]

    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            scale = gamma * max(0.0, 1 - step[0] / total)
            step[0] += 1
            ce = F.cross_entropy(model(x), y, reduction="none")
            if scale == 0:
                return ce
            return ce + scale * sum(p.abs().sum() for p in model.parameters() if p.requires_grad)
        return loss

    task.finetune(lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, loss_fn=loss_fn,
                  desc="l1sparse")
    return task.model


@register("scrub")
def scrub(task: Task, *, lr: float = 1e-4, weight_decay: float = 5e-4, epochs: int = 5, max_epochs: int = 2,
          batch_size: int = 128, forget_batch_size: int | None = None, alpha: float = 0.001,
          gamma: float = 0.99, temperature: float = 4.0) -> nn.Module:
    """SCRUB (Kurmanji et al., NeurIPS 2023): the student (the original) moves away from the frozen
    original teacher on D_f and stays close to it on D_r. Each of ``epochs`` epochs: if it is one of
    the first ``max_epochs``, a max-pass over D_f minimising -KL(teacher || student); then a min-pass
    over D_r minimising ``alpha * KL + gamma * CE``. KL at ``temperature`` with the T^2 factor, as in the
    paper's code.

    One small loop of its own (fit shuffles one stream; SCRUB alternates passes): one AdamW optimiser
    for the whole run, per-step cosine decay to 0 over all max- and min-steps, D_r with crop + flip,
    D_f un-augmented, bf16 autocast where the task's precision says so."""
    _check_positive(temperature=temperature, lr=lr, batch_size=batch_size)
    if epochs < 0 or max_epochs < 0:
        raise ValueError(f"epochs and max_epochs must be >= 0, got {epochs} and {max_epochs}")
    device, model = task.device, task.model.to(memory_format=torch.channels_last)
    teacher = task.frozen_copy()
    amp = task.precision == "bf16"
    pad = task.crop_padding
    fbs = forget_batch_size or batch_size
    x_f, x_r, y_r = task.forget_images.to(device), task.retain_images.to(device), task.retain_labels.to(device)
    recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, optimizer="adamw",
                    schedule="cosine", crop_padding=pad)
    steps = [steps_per_epoch(len(t), b) for t, b in ((x_f, fbs), (x_r, batch_size))]
    total = min(max_epochs, epochs) * steps[0] + epochs * steps[1]
    optimizer = make_optimizer(model.parameters(), recipe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(recipe, s, total, max(steps)))
    generator = torch.Generator().manual_seed(task.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True

    done = [0]  # optimiser steps so far
    check_every = 1 if device.type == "cpu" else FINITE_CHECK_EVERY  # no per-step host sync on a GPU

    def step(x: torch.Tensor, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        x = x.float().div_(255).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            with torch.no_grad():
                t = teacher(x)
            loss = loss_of(model(x), t).float()
        if done[0] % check_every == 0 or done[0] == total - 1:
            check_finite(loss, "scrub", done[0], scheduler.get_last_lr()[0])
        done[0] += 1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    model.train()
    for epoch in range(epochs):
        if epoch < max_epochs:
            for idx in shuffled_batches(len(x_f), fbs, generator):
                step(x_f[idx.to(device)], lambda s, t: -_kl(s, t, temperature).mean() * temperature ** 2)
        for idx in shuffled_batches(len(x_r), batch_size, generator):
            y = y_r[idx.to(device)]
            step(augment(x_r[idx.to(device)], pad, True, generator),
                 lambda s, t, y=y: (alpha * temperature ** 2 * _kl(s, t, temperature)
                                    + gamma * F.cross_entropy(s.float(), y, reduction="none")).mean())
    return model.eval()


@register("ssd")
def ssd(task: Task, *, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 32) -> nn.Module:
    """SSD, Selective Synaptic Dampening (Foster et al., AAAI 2024): no training. Diagonal Fisher
    importances (mean of squared per-sample cross-entropy gradients, eval mode, no augmentation) on
    D_f and on the whole training set D; every parameter entry with imp_f > ``alpha`` * imp_D is
    multiplied by min(``lam`` * imp_D / imp_f, 1). ``batch_size`` is only the per-sample-gradient
    chunk (memory), it does not change the result.

    Per-sample, not per-batch squared gradients (SSD's code squares each batch's mean gradient):
    those scale with 1 / batch size, so a small D_f or a short last batch inflates imp_f and
    dampens half the network. With the per-sample Fisher, D containing D_f bounds
    imp_f / imp_D <= |D| / |D_f|, so ``alpha`` must be below that (e.g. < 10 to forget a class
    holding 10 % of the data) for anything to be dampened."""
    _check_positive(alpha=alpha, lam=lam, batch_size=batch_size)
    n_d, n_f = len(task.data.train_labels), len(task.split.forget)
    if alpha >= n_d / n_f:
        warnings.warn(f"ssd: alpha={alpha} >= |D|/|D_f| = {n_d / n_f:.3g}, so no weight can be selected "
                      "and the model is returned unchanged", stacklevel=2)
    model, dev = task.model, task.device
    imp_f = diagonal_fisher(model, task.forget_images, task.forget_labels, device=dev, chunk=batch_size)
    imp_d = diagonal_fisher(model, task.data.train_images, task.data.train_labels, device=dev, chunk=batch_size)
    with torch.no_grad():
        params = [p for p in model.parameters() if p.requires_grad]
        for p, f, d in zip(params, imp_f, imp_d):
            selected = f > alpha * d
            factor = (lam * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1)
            p.mul_(torch.where(selected, factor, torch.ones_like(factor)).to(p.dtype))
    return model.eval()


def boundary_labels(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *,
                    device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Boundary Shrink's nearest wrong class: the class ``model`` (eval mode) predicts for the FGSM
    neighbour clamp(x + eps * sign(grad_x CE(x, y)), 0, 1) in [0, 1] pixel space, its own class
    excluded (the runner-up when the neighbour is still classified as y). CPU int64."""
    was_training = model.training
    model.eval()
    out = []
    for x, y in _chunks(images, labels, batch_size, device):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
        with torch.no_grad():
            logits = model((x + eps * g.sign()).clamp_(0, 1)).float()
            logits[torch.arange(len(y), device=device), y] = float("-inf")
            out.append(logits.argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out)


@register("bs")
def bs(task: Task, *, lr: float = 1.8e-5, weight_decay: float = 4e-4, epochs: int = 5, batch_size: int = 128,
       eps: float = 8 / 255, retain: bool = True, head_reinit: bool = False) -> nn.Module:
    """Boundary Shrink (Chen et al., CVPR 2023, "Boundary unlearning"): relabel each D_f sample to the
    class the original model predicts for its FGSM neighbour (step ``eps`` in [0, 1] pixel space; the
    runner-up class if that is still its own), then fine-tune like RL on D_r + relabelled D_f.
    The paper fine-tunes on the relabelled D_f alone; ``retain=False`` does that. The default keeps
    D_r in the stream, like RL and SalUn, so that every relabelling method sees the same data."""
    _need_classes(task, "bs")
    _check_positive(eps=eps)
    labels = boundary_labels(task.model, task.forget_images, task.forget_labels, eps, device=task.device)
    if head_reinit:
        task.reset_head()
    task.finetune(task.forget_images, labels, retain=retain, lr=lr, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, desc="bs")
    return task.model
