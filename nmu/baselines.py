"""The baselines NatMU is compared with (docs/method.md, "Baselines"), registered in
:data:`nmu.unlearn.METHODS`. Retraining, the gold standard, is :meth:`nmu.Experiment.retrain`.

==============  ===============================================================================
``ft``          fine-tune on D_r only
``ga``          gradient ascent on (augmented) D_f
``rl``          Random Labels / Amnesiac: fine-tune on D_r + D_f with a random wrong label each
``badteacher``  distil from the original (D_r) and a random network (D_f)
``salun``       RL restricted to the weights most salient for the D_f loss
``l1sparse``    FT with an l1 penalty decaying linearly per epoch, under SGD
``scrub``       SCRUB: alternate KL max-steps on D_f and KL + CE min-steps on D_r, under SGD
``ssd``         Selective Synaptic Dampening: no training, dampen D_f-specific weights
``bs``          Boundary Shrink: fine-tune on D_f labelled by its FGSM neighbour's class, under SGD
``ngplus``      NG+ (NegGrad+): alpha x CE on a D_r batch minus (1 - alpha) x CE on a D_f batch, SGD
``sfron``       SFR-on: slow D_r steps and salient, adaptive ascent steps on D_f, under SGD
==============  ===============================================================================

Shared policy (the same as NatMU's):

- fine-tuning is :meth:`nmu.unlearn.Task.finetune`, the one unlearning stream: D_r with crop + flip,
  then the method's extra samples (relabelled D_f, D_f for distillation) as they are, shuffled
  together; the loss function tells them apart by the batch indices. Per-step cosine decay to 0,
  5 epochs unless the method's own paper says otherwise (FT and l1-sparse: 10, as in Jia et al.
  2023; SCRUB: 3; Boundary Shrink: 10 passes over D_f; SFR-on: 1500 iterations). SCRUB, NG+ and
  SFR-on, whose references alternate or pair D_r and D_f batches, run a loop of their own
  (:class:`_Loop`) with the same augmentation and schedule;
- the optimiser is AdamW, except where the reference's method depends on SGD: l1-sparse (an
  adaptive optimiser rescales the l1 subgradient), SCRUB, Boundary Shrink, SFR-on (run at their
  reference SGD settings, momentum 0.9) and NG+ (its reference's SGD without momentum);
- D_f is fed with the training augmentation where the reference trains on it alone in train mode
  (GA, Boundary Shrink, SFR-on's fast steps) and where D_f batches of their own are paired with
  augmented D_r batches (NG+): un-augmented images would move the BatchNorm statistics by themselves;
- importance and saliency statistics (SalUn, SSD, SFR-on) are computed once, with the original model
  in eval mode, in float32, on un-augmented images; Boundary Shrink's FGSM neighbours are computed at
  every step, with the frozen original in eval mode, in float32, on the batch as fed;
- a method may report numbers about its run in ``task.info`` (SSD: ``ssd_dampened_share``); they
  become columns of the run's record.

Defaults are the NatMU reference's CIFAR-10 settings where it has them (RL, BadTeacher, SalUn),
else the method's reference code (l1-sparse, SCRUB, Boundary Shrink, SSD, NG+, SFR-on), else its
paper adapted to AdamW (FT, GA); the YAML presets override them per setting. Each docstring names the deviations
kept on purpose, and why.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nmu.train import (LossFn, Recipe, augment, check_finite, finite_check_every, lr_factor, make_generator,
                       make_optimizer, set_cudnn, shuffled_batches, steps_per_epoch)
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


def _batch_grads(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 device: torch.device, reduction: str) -> Iterator[list[torch.Tensor]]:
    """Batch by batch, in order: the gradient of the batch's cross-entropy (``reduction``: ``"sum"`` or
    ``"mean"`` over the batch) w.r.t. every trainable parameter, float32, zeros for an unused one (eval
    mode, no augmentation); ``.grad`` is left untouched."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        for x, y in _chunks(images, labels, batch_size, device):
            grads = torch.autograd.grad(F.cross_entropy(model(x), y, reduction=reduction), params, allow_unused=True)
            yield [torch.zeros_like(p, dtype=torch.float32) if g is None else g.float() for p, g in zip(params, grads)]
    finally:
        model.train(was_training)


def _mean_loss_grad(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                    device: torch.device) -> list[torch.Tensor]:
    """Gradient of the mean cross-entropy over a set w.r.t. every trainable parameter (eval mode,
    float32, no augmentation), accumulated batch by batch; ``.grad`` is left untouched."""
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in model.parameters() if p.requires_grad]
    for grads in _batch_grads(model, images, labels, batch_size=batch_size, device=device, reduction="sum"):
        for a, g in zip(acc, grads):
            a.add_(g)
    return [a.div_(len(labels)) for a in acc]


def batch_fisher(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 device: torch.device) -> list[torch.Tensor]:
    """SFR-on's importance of a set, as its reference computes it: the mean over the set's batches (of
    ``batch_size``, in the given order) of the squared gradient of each batch's mean cross-entropy, one
    tensor per trainable parameter (eval mode, float32, no augmentation)."""
    acc = [torch.zeros_like(p, dtype=torch.float32) for p in model.parameters() if p.requires_grad]
    batches = 0
    for grads in _batch_grads(model, images, labels, batch_size=batch_size, device=device, reduction="mean"):
        for a, g in zip(acc, grads):
            a.add_(g.square())
        batches += 1
    return [a.div_(batches) for a in acc]


class _Loop:
    """What the baselines whose reference alternates streams within a run share (SCRUB, NG+, SFR-on:
    :meth:`Task.finetune`'s one shuffled stream cannot express them): one SGD optimiser for the whole
    run with nmu's per-step cosine decay of the lr to 0 over ``total`` scheduler steps, the task's
    seeded generator (batch order, augmentation), bf16 autocast where the task's precision says so and
    the finite-loss check. The task's model trains in place (channels_last, train mode); D_f and D_r
    are on the task's device as ``x_f``, ``y_f``, ``x_r``, ``y_r``."""

    def __init__(self, task: Task, *, lr: float, weight_decay: float, momentum: float, total: int,
                 desc: str) -> None:
        self.task, self.desc = task, desc
        self.recipe = Recipe(epochs=1, lr=lr, weight_decay=weight_decay, optimizer="sgd", momentum=momentum,
                             schedule="cosine")
        self.total = total
        self.model = task.model.to(memory_format=torch.channels_last)
        device = task.device
        self.x_f, self.y_f = task.forget_images.to(device), task.forget_labels.to(device)
        self.x_r, self.y_r = task.retain_images.to(device), task.retain_labels.to(device)
        self.optimizer = make_optimizer(self.model.parameters(), self.recipe)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.factor)
        self.generator = make_generator(task.seed, device)
        self.check_every = finite_check_every(device)  # no per-step host sync on a GPU
        self.updates = 0
        self.last: tuple[torch.Tensor, int, float] | None = None  # the last update's loss, index and lr
        set_cudnn(device)
        self.model.train()

    def factor(self, step: int) -> float:
        """The lr's multiplier at scheduler step ``step`` (0-based): 0.5 * (1 + cos(pi * step / total))."""
        return lr_factor(self.recipe, step, self.total, 1)

    def forever(self, n: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Shuffled index batches of ``n`` samples, pass after pass, each pass reshuffled."""
        while True:
            yield from shuffled_batches(n, batch_size, self.generator)

    def inputs(self, images: torch.Tensor, augmented: bool) -> torch.Tensor:
        """A uint8 batch as the model's float input in [0, 1]; ``augmented``: with D_r's crop + flip."""
        if augmented:
            images = augment(images, self.task.crop_padding, True, self.generator)
        return images.float().div_(255).contiguous(memory_format=torch.channels_last)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.task.device.type, dtype=torch.bfloat16, enabled=self.task.precision == "bf16")

    def update(self, loss: torch.Tensor, *, schedule: bool = True,
               edit_grads: Callable[[], None] | None = None) -> None:
        """One optimiser step down the scalar ``loss``; ``edit_grads`` changes the gradients before the
        step; ``schedule``: advance the lr schedule after it."""
        loss = loss.float()
        self.last = (loss.detach(), self.updates, self.scheduler.get_last_lr()[0])
        if self.updates % self.check_every == 0:
            self._check()
        self.updates += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if edit_grads is not None:
            edit_grads()
        self.optimizer.step()
        if schedule:
            self.scheduler.step()

    def finish(self) -> nn.Module:
        """The trained model in eval mode, after checking the last loss (a GPU checks only every few steps)."""
        if self.last is not None:
            self._check()
        return self.model.eval()

    def _check(self) -> None:
        value, step, lr = self.last
        check_finite(value, self.desc, step, lr)


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
    D_f (minimise its negative) with a small learning rate; D_r is not used. AdamW, cosine decay.

    D_f is fed with the training augmentation (crop + flip), in train mode, as the reference does
    (``augment_extra``; the one exception, with Boundary Shrink, to "added samples as they are"): the
    forward passes alone update the BatchNorm statistics, and un-augmented images move them away from
    those of training (five epochs of un-augmented D_f at lr 0 cost a quick original 3 points of test
    accuracy). A class-wise D_f still pulls them towards its one class, as in the reference."""
    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        return lambda model, x, y, idx: -F.cross_entropy(model(x), y, reduction="none")
    task.finetune(task.forget_images, task.forget_labels, retain=False, lr=lr, weight_decay=weight_decay,
                  epochs=epochs, batch_size=batch_size, loss_fn=loss_fn, augment_extra=True, desc="ga")
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
    together. ``head_reinit`` first re-initialises the final linear layer (sub-class settings). This is
    NatMU's variant (its `amnesiac.py`); SalUn's RL draws the labels over all classes and redraws them."""
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


def l1_coefficient(gamma: float, epoch: int, epochs: int) -> float:
    """l1-sparse's penalty weight in epoch ``epoch`` (0-based) of ``epochs``: gamma * (1 - epoch / epochs),
    a linear decay per epoch (the last epoch still has gamma / epochs)."""
    return gamma * (1 - epoch / epochs)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """The sum of |w| over every trainable parameter (float32)."""
    return sum(p.abs().sum(dtype=torch.float32) for p in model.parameters() if p.requires_grad)


@register("l1sparse")
def l1sparse(task: Task, *, lr: float = 1e-2, weight_decay: float = 5e-4, epochs: int = 10,
             batch_size: int = 128, gamma: float = 5e-4) -> nn.Module:
    """l1-sparse (Jia et al., NeurIPS 2023, "Model sparsity can simplify machine unlearning"): FT on
    D_r minimising CE + alpha_t * ||theta||_1 over all parameters, alpha_t = ``gamma`` * (1 - t / T) in
    epoch t of T (:func:`l1_coefficient`: linear decay to 0, per epoch, as the reference). The scalar
    penalty is added to every sample's loss, so the batch mean carries it once.

    SGD with momentum 0.9 as the reference: an adaptive optimiser (AdamW) divides the l1 subgradient
    by its running scale, so ``gamma`` would lose its meaning. The default lr 0.01 is the low end of
    the reference's SGD fine-tuning range (0.01-0.1). Kept deviation: nmu's per-step cosine decay of
    the lr, shared by every fine-tuning method (the reference's step-decay milestones lie beyond its
    10 epochs, i.e. a constant lr)."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    per_epoch = steps_per_epoch(len(task.split.retain), batch_size)
    step = [0]

    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            scale = l1_coefficient(gamma, step[0] // per_epoch, epochs)
            step[0] += 1
            ce = F.cross_entropy(model(x), y, reduction="none")
            return ce + scale * l1_norm(model) if scale else ce
        return loss

    task.finetune(lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, loss_fn=loss_fn,
                  optimizer="sgd", desc="l1sparse")
    return task.model


def scrub_max_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """SCRUB's max-step loss on a D_f batch: -KL(teacher || student) at ``temperature``, x T^2, batch mean."""
    return -_kl(student, teacher, temperature).mean() * temperature ** 2


def scrub_min_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float,
                   alpha: float, gamma: float) -> torch.Tensor:
    """SCRUB's min-step loss on a D_r batch: alpha * T^2 * KL(teacher || student) + gamma * CE, batch mean."""
    return (alpha * temperature ** 2 * _kl(student, teacher, temperature)
            + gamma * F.cross_entropy(student.float(), labels, reduction="none")).mean()


@register("scrub")
def scrub(task: Task, *, lr: float = 5e-4, weight_decay: float = 5e-4, epochs: int = 3, max_epochs: int = 2,
          batch_size: int = 256, forget_batch_size: int = 512, alpha: float = 0.001,
          gamma: float = 0.99, temperature: float = 4.0) -> nn.Module:
    """SCRUB (Kurmanji et al., NeurIPS 2023): the student (the original) moves away from the frozen
    original teacher on D_f and stays close to it on D_r. Each of ``epochs`` epochs: if it is one of
    the first ``max_epochs``, a max-pass over D_f (batches of ``forget_batch_size``) minimising
    -KL(teacher || student) (:func:`scrub_max_loss`); then a min-pass over D_r (batches of
    ``batch_size``) minimising ``alpha * KL + gamma * CE`` (:func:`scrub_min_loss`). KL at
    ``temperature`` with the T^2 factor, as in the paper's code.

    Defaults are the reference's large-scale configuration: 3 epochs with max-steps in the first 2,
    forget batch 512, retain batch 256, SGD lr 5e-4 with momentum 0.9 and weight decay 5e-4, T = 4,
    gamma 0.99, alpha 0.001.

    One small loop of its own (fit shuffles one stream; SCRUB alternates passes): one SGD optimiser
    for the whole run, D_r with crop + flip (the reference augments nothing: nmu's augmentation
    policy, docs/method.md), D_f un-augmented, bf16 autocast where the task's
    precision says so. Kept deviation: nmu's per-step cosine decay to 0 over all max- and min-steps,
    as every fine-tuning method here (the reference's lr decay epochs lie beyond these 3 epochs)."""
    _check_positive(temperature=temperature, lr=lr, batch_size=batch_size, forget_batch_size=forget_batch_size)
    if epochs < 0 or max_epochs < 0:
        raise ValueError(f"epochs and max_epochs must be >= 0, got {epochs} and {max_epochs}")
    max_steps = min(max_epochs, epochs) * steps_per_epoch(len(task.split.forget), forget_batch_size)
    min_steps = epochs * steps_per_epoch(len(task.split.retain), batch_size)
    loop = _Loop(task, lr=lr, weight_decay=weight_decay, momentum=0.9, total=max_steps + min_steps, desc="scrub")
    teacher = task.frozen_copy()
    x_f, x_r, y_r = loop.x_f, loop.x_r, loop.y_r

    def step(x: torch.Tensor, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        with loop.autocast():
            with torch.no_grad():
                t = teacher(x)
            loss = loss_of(loop.model(x), t)
        loop.update(loss)

    for epoch in range(epochs):
        if epoch < max_epochs:
            for idx in shuffled_batches(len(x_f), forget_batch_size, loop.generator):
                step(loop.inputs(x_f[idx], augmented=False), lambda s, t: scrub_max_loss(s, t, temperature))
        for idx in shuffled_batches(len(x_r), batch_size, loop.generator):
            y = y_r[idx]
            step(loop.inputs(x_r[idx], augmented=True),
                 lambda s, t, y=y: scrub_min_loss(s, t, y, temperature, alpha, gamma))
    return loop.finish()


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
    holding 10 % of the data) for anything to be dampened.

    The share of all weights the run changed is reported as ``task.info["ssd_dampened_share"]`` (a
    column of the run's record): an ``alpha`` that dampens a large share is no longer selective."""
    _check_positive(alpha=alpha, lam=lam, batch_size=batch_size)
    n_d, n_f = len(task.data.train_labels), len(task.split.forget)
    if alpha >= n_d / n_f:
        warnings.warn(f"ssd: alpha={alpha} >= |D|/|D_f| = {n_d / n_f:.3g}, so no weight can be selected "
                      "and the model is returned unchanged", stacklevel=2)
    model, dev = task.model, task.device
    imp_f = diagonal_fisher(model, task.forget_images, task.forget_labels, device=dev, chunk=batch_size)
    imp_d = diagonal_fisher(model, task.data.train_images, task.data.train_labels, device=dev, chunk=batch_size)
    changed = total = 0
    with torch.no_grad():
        params = [p for p in model.parameters() if p.requires_grad]
        for p, f, d in zip(params, imp_f, imp_d):
            selected = f > alpha * d
            factor = (lam * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1)
            new = p * torch.where(selected, factor, torch.ones_like(factor)).to(p.dtype)
            changed += int((new != p).sum())
            total += p.numel()
            p.copy_(new)
    task.info["ssd_dampened_share"] = changed / max(total, 1)
    return model.eval()


def boundary_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Boundary Shrink's neighbour labels for a float batch ``x`` in [0, 1] (on ``model``'s device):
    one FGSM step x' = round(clamp(x + ``eps`` * sign(grad_x CE(model(x), y)), 0, 1) * 255) / 255 (the
    1/255 pixel grid), label = argmax model(x'). A failed attack keeps the true label. ``model`` is
    used as it is (Boundary Shrink passes the frozen eval-mode original), in float32 even under
    autocast; its parameters get no gradient."""
    with torch.autocast(x.device.type, enabled=False), torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x).float(), y, reduction="sum"), x)
        with torch.no_grad():
            neighbour = (x + eps * g.sign()).clamp_(0, 1).mul_(255).round_().div_(255)
            return model(neighbour).float().argmax(1)


@register("bs")
def bs(task: Task, *, lr: float = 1e-5, weight_decay: float = 0.0, epochs: int = 10, batch_size: int = 128,
       eps: float = 0.1, retain: bool = False, head_reinit: bool = False) -> nn.Module:
    """Boundary Shrink (Chen et al., CVPR 2023, "Boundary unlearning"), as the reference (and SalUn's
    port): fine-tune on D_f alone, each D_f sample labelled with the class the frozen original (eval
    mode) predicts for its FGSM neighbour (:func:`boundary_labels`: one signed-gradient step of ``eps``
    = 0.1 in [0, 1] pixel space, clamped, on the 1/255 grid; plain argmax, so a failed attack keeps
    the true label). SGD with momentum 0.9, lr 1e-5, no weight decay, 10 epochs (passes over D_f),
    train mode.

    The neighbour is recomputed at every step on the batch as it is fed, as the reference does:
    D_f gets the training crop + flip (as in SalUn's port, and so that train-mode passes over D_f
    alone do not pull the BatchNorm statistics away from those of training, see :func:`ga`), so
    each step attacks a new view of the sample. ``retain=True`` adds D_r (crop + flip, true labels)
    to the stream, like RL and SalUn: an option, not the reference. ``head_reinit`` re-initialises the
    head after the frozen original is taken. Kept deviations: nmu's per-step cosine decay of the lr,
    shared by every fine-tuning method (the reference keeps lr 1e-5 constant), and batch 128 (the
    reference 64, SalUn's port 256)."""
    _need_classes(task, "bs")
    _check_positive(eps=eps)
    original = task.frozen_copy()
    if head_reinit:
        task.reset_head()

    def loss_fn(is_forget: torch.Tensor) -> LossFn:
        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            f = is_forget[idx].to(x.device)
            if f.any():
                y = y.clone()
                y[f] = boundary_labels(original, x[f], y[f], eps)
            return F.cross_entropy(model(x), y, reduction="none")
        return loss

    task.finetune(task.forget_images, task.forget_labels, retain=retain, lr=lr, weight_decay=weight_decay,
                  epochs=epochs, batch_size=batch_size, loss_fn=loss_fn, optimizer="sgd", augment_extra=True,
                  desc="bs")
    return task.model


def ngplus_loss(retain_logits: torch.Tensor, retain_labels: torch.Tensor, forget_logits: torch.Tensor,
                forget_labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """NG+'s loss on a pair of batches: ``alpha`` x the mean cross-entropy of the D_r batch minus
    (1 - ``alpha``) x that of the D_f batch (float32)."""
    return (alpha * F.cross_entropy(retain_logits.float(), retain_labels)
            - (1 - alpha) * F.cross_entropy(forget_logits.float(), forget_labels))


@register("ngplus")
def ngplus(task: Task, *, lr: float = 0.01, weight_decay: float = 0.0, epochs: int = 5, batch_size: int = 32,
           forget_batch_size: int = 16, alpha: float = 0.9999) -> nn.Module:
    """NG+ / NegGrad+ (Kurmanji et al., NeurIPS 2023, the SCRUB paper): fine-tune on
    ``alpha * CE(D_r) - (1 - alpha) * CE(D_f)`` (:func:`ngplus_loss`). Each step pairs a D_r batch
    (``batch_size``) with the next D_f batch (``forget_batch_size``; D_f is cycled as often as a pass
    over D_r needs), one forward pass each, in train mode; an epoch is one pass over D_r. alpha = 1 is
    plain fine-tuning on D_r, alpha = 0 gradient ascent on D_f.

    Defaults are the SCRUB repository's CIFAR-10 configuration (``MIA_experiments.ipynb``, its
    large-scale NG+ run): alpha 0.9999, 5 epochs, SGD lr 0.01 without momentum or weight decay, D_r
    batches of 32 and D_f batches of 16 (its ``VGG_experiments.ipynb`` has lr 1e-4, weight decay 5e-4
    and batches of 128 and 128).

    Its own loop (:class:`_Loop`: two batches per step). Differences from the reference: D_r gets the
    crop + flip (the augmentation policy; the reference's notebooks augment nothing) and so does D_f,
    so that both forward passes of a step see one distribution, as in the reference: un-augmented D_f
    batches in train mode pull the BatchNorm statistics away from the augmented D_r's (at lr 0 on the
    quick validation original, 5 epochs moved them by 13 % and cost 0.5 points of test accuracy; 3 %
    and 0.2 points with D_f augmented); each pass over D_f is reshuffled (the reference's
    ``itertools.cycle`` replays the first pass's order until the epoch ends); nmu's per-step cosine
    decay of the lr to 0, as every fine-tuning method here (the reference keeps it constant)."""
    _check_positive(batch_size=batch_size, forget_batch_size=forget_batch_size)
    if not 0 <= alpha <= 1 or epochs < 0:
        raise ValueError(f"alpha must be in [0, 1] and epochs >= 0, got {alpha} and {epochs}")
    loop = _Loop(task, lr=lr, weight_decay=weight_decay, momentum=0.0,
                 total=epochs * steps_per_epoch(len(task.split.retain), batch_size), desc="ngplus")
    forget = loop.forever(len(loop.y_f), forget_batch_size)
    for _ in range(epochs):
        for idx in shuffled_batches(len(loop.y_r), batch_size, loop.generator):
            jdx = next(forget)
            with loop.autocast():
                loss = ngplus_loss(loop.model(loop.inputs(loop.x_r[idx], augmented=True)), loop.y_r[idx],
                                   loop.model(loop.inputs(loop.x_f[jdx], augmented=True)), loop.y_f[jdx], alpha)
            loop.update(loss)
    return loop.finish()


def balanced_saliency_mask(model: nn.Module, forget: tuple[torch.Tensor, torch.Tensor],
                           retain: tuple[torch.Tensor, torch.Tensor], gamma: float, *, batch_size: int,
                           device: torch.device) -> list[torch.Tensor]:
    """SFR-on's forget-remain balanced weight saliency: bool masks (one per trainable parameter)
    selecting the weights whose importance to D_f is at least ``gamma`` times their importance to D_r,
    (imp_f + 1e-15) / (imp_r + 1e-15) >= ``gamma``, each importance a :func:`batch_fisher` over
    batches of ``batch_size`` of the (images, labels) given, in their order; ``gamma`` = 0 selects all."""
    imp_f = batch_fisher(model, *forget, batch_size=batch_size, device=device)
    imp_r = batch_fisher(model, *retain, batch_size=batch_size, device=device)
    return [(f + 1e-15) / (r + 1e-15) >= gamma for f, r in zip(imp_f, imp_r)]


def sfron_forget_loss(logits: torch.Tensor, labels: torch.Tensor, coefficient: float, lam: float) -> torch.Tensor:
    """SFR-on's fast-step loss on a D_f batch: -``coefficient`` x its adaptive cross-entropy, the
    samples' cross-entropies weighted in proportion to CE^-``lam`` (weights detached, summing to 1:
    the samples not yet forgotten weigh most; ``lam`` = 0 is the batch mean). Float32."""
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    weights = (ce.detach().pow(lam) + 1e-15).reciprocal()
    return -coefficient * (weights / weights.sum() * ce).sum()


def salient_clip_(params: list[torch.Tensor], masks: list[torch.Tensor], max_norm: float) -> None:
    """SFR-on's edit of a fast step's gradients, in place: zero them outside the salient weights
    (``masks``), then scale them down to a joint L2 norm of at most ``max_norm``."""
    for p, m in zip(params, masks):
        if p.grad is not None:
            p.grad.mul_(m)
    torch.nn.utils.clip_grad_norm_(params, max_norm)


@register("sfron")
def sfron(task: Task, *, lr: float = 0.01, weight_decay: float = 5e-4, steps: int = 1500, batch_size: int = 128,
          forget_every: int = 5, alpha: float = 25.0, lam: float = 0.5, gamma: float = 1.0,
          max_norm: float = 7.0) -> nn.Module:
    """SFR-on (Huang et al., NeurIPS 2024, "Unified gradient-based machine unlearning with remain
    geometry enhancement"): saliency forgetting in the remain-preserving manifold, online. Fast-slow
    updates of one SGD optimiser over ``steps`` iterations: each iteration a slow step down the
    cross-entropy of a D_r batch, preceded every ``forget_every``-th iteration by a fast step down
    :func:`sfron_forget_loss` of a D_f batch (gradient ascent on its cross-entropies weighted by
    CE^-``lam``, times alpha_t), its gradient restricted to the forget-remain balanced salient weights
    (:func:`balanced_saliency_mask` at ``gamma``, computed once from the original) and clipped to L2
    norm ``max_norm`` (:func:`salient_clip_`). alpha_t = ``alpha`` and the lr decay together, cosine
    per iteration, to 0. Batches of ``batch_size`` from each set, cycled and reshuffled every pass,
    with the crop + flip (D_f too, as the reference's loaders), in train mode.

    Defaults are the reference's CIFAR-10 random 10 % configuration (``Classification/unlearn/sfron.py``,
    ResNet-18): SGD lr 0.01, momentum 0.9, weight decay 5e-4 (on every step and every weight, one
    momentum buffer), 1500 iterations, a fast step every 5, alpha 25, lam 0.5, gamma 1, max_norm 7,
    batch 128.

    Differences from the reference: the importances are computed on un-augmented images (the policy
    of SalUn's and SSD's statistics; the reference's loaders carry the crop + flip there too), each set
    batched in an order shuffled with the task seed; the reference's average of the weights is left
    out (at its ``ema_beta`` 1.0 it returns the model unchanged); its CIFAR-10 values serve every
    setting (the reference gives no others but a commented-out TinyImageNet block with AdamW)."""
    _check_positive(batch_size=batch_size, forget_every=forget_every, max_norm=max_norm)
    if min(steps, alpha, lam, gamma) < 0:
        raise ValueError(f"steps, alpha, lam and gamma must be >= 0, got {steps}, {alpha}, {lam} and {gamma}")
    order = torch.Generator().manual_seed(task.seed)
    f, r = (torch.randperm(len(s), generator=order) for s in (task.split.forget, task.split.retain))
    masks = balanced_saliency_mask(task.model, (task.forget_images[f], task.forget_labels[f]),
                                   (task.retain_images[r], task.retain_labels[r]), gamma, batch_size=batch_size,
                                   device=task.device)
    loop = _Loop(task, lr=lr, weight_decay=weight_decay, momentum=0.9, total=steps, desc="sfron")
    params = [p for p in loop.model.parameters() if p.requires_grad]
    forget, retain = loop.forever(len(loop.y_f), batch_size), loop.forever(len(loop.y_r), batch_size)
    for step in range(steps):
        if step % forget_every == 0:
            idx = next(forget)
            with loop.autocast():
                loss = sfron_forget_loss(loop.model(loop.inputs(loop.x_f[idx], augmented=True)), loop.y_f[idx],
                                         alpha * loop.factor(step), lam)
            loop.update(loss, schedule=False, edit_grads=lambda: salient_clip_(params, masks, max_norm))
        idx = next(retain)
        with loop.autocast():
            loss = F.cross_entropy(loop.model(loop.inputs(loop.x_r[idx], augmented=True)).float(), loop.y_r[idx])
        loop.update(loss)
    return loop.finish()
