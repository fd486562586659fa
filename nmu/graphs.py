"""A training step (forward, cross-entropy, backward, SGD or AdamW update) captured once as a CUDA graph
and then replayed, for :func:`nmu.train.fit` on a GPU.

Eager PyTorch launches each of the few hundred kernels of a VGG-16-BN step from Python; at batch 128
a fast GPU waits for the host. A replayed graph launches the whole step at once (the measured
speed-up: results/paper/README.md).

Plain cross-entropy training is captured, with SGD (the original and retrained models: the longest
runs) or AdamW (the fine-tuning of NatMU, FT and RL: D_r plus extra labelled samples); the methods
with losses of their own (data-dependent branches, teachers, masks) stay eager.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WARMUP_STEPS = 3
"""Eager steps before the capture (on a side stream, as CUDA graphs require): cuDNN chooses its
kernels and every buffer is allocated. They are real training steps."""


@torch.no_grad()
def sgd_update(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor], lr: torch.Tensor,
               momentum: float, weight_decay: float) -> None:
    """``torch.optim.SGD``'s update (coupled weight decay, momentum without dampening or Nesterov;
    ``bufs`` start at zero), with the learning rate a tensor, so a captured graph reads its current value."""
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else list(grads)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d)
    torch._foreach_add_(params, [b * lr for b in bufs], alpha=-1.0)  # (lr read on the device: no sync)


@torch.no_grad()
def adamw_update(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                 exp_avg_sqs: list[torch.Tensor], step: torch.Tensor, lr: torch.Tensor, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """``torch.optim.AdamW``'s update (decoupled weight decay, bias correction, no amsgrad) with the
    learning rate and the step count device tensors, so that a captured graph reads and advances them."""
    beta1, beta2 = betas
    step.add_(1)
    if weight_decay:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, (1 - torch.pow(beta2, step)).sqrt())
    torch._foreach_add_(denom, eps)
    updates = torch._foreach_div(exp_avgs, denom)
    torch._foreach_mul_(updates, lr / (1 - torch.pow(beta1, step)))
    torch._foreach_sub_(params, updates)


class GraphedStep:
    """``step(x, y, lr) -> per-sample losses`` for batches of one shape: the first
    :data:`WARMUP_STEPS` calls run eagerly, the next captures the step, every later call replays it.
    The returned losses live in a buffer that the next call overwrites. ``optimizer``: ``"sgd"``
    (:func:`sgd_update`, ``momentum``) or ``"adamw"`` (:func:`adamw_update`, PyTorch's default betas)."""

    def __init__(self, model: nn.Module, batch_shape: tuple[int, ...], *, momentum: float, weight_decay: float,
                 label_smoothing: float, amp: bool, optimizer: str = "sgd"):
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"GraphedStep captures 'sgd' or 'adamw', not {optimizer!r}")
        device = next(model.parameters()).device
        self.model, self.momentum, self.weight_decay, self.optimizer = model, momentum, weight_decay, optimizer
        self.label_smoothing, self.amp = label_smoothing, amp
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.bufs = [torch.zeros_like(p) for p in self.params]
        """SGD's momentum buffers, or AdamW's first moments (both start at zero)."""
        self.sq_bufs = [torch.zeros_like(p) for p in self.params] if optimizer == "adamw" else []
        self.step_count = torch.zeros((), device=device)
        self.lr = torch.zeros((), device=device)
        self.x = torch.zeros(batch_shape, device=device).contiguous(memory_format=torch.channels_last)
        self.y = torch.zeros(batch_shape[0], dtype=torch.long, device=device)
        self.stream: torch.cuda.Stream | None = None
        """The side stream of the eager warm-up steps and of the capture (one stream for both)."""
        self.graph: torch.cuda.CUDAGraph | None = None
        self.losses: torch.Tensor | None = None
        self.eager_steps = 0

    def step_eagerly(self) -> torch.Tensor:
        """One step on the buffers, eagerly (what the graph captures); returns the per-sample losses."""
        # autocast's weight-cast cache must be off inside a graph (it would hold tensors of the capture)
        with torch.autocast(self.x.device.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
            losses = F.cross_entropy(self.model(self.x), self.y, reduction="none",
                                     label_smoothing=self.label_smoothing).float()
        losses.mean().backward()
        grads = [p.grad for p in self.params]
        if self.optimizer == "sgd":
            sgd_update(self.params, grads, self.bufs, self.lr, self.momentum, self.weight_decay)
        else:
            adamw_update(self.params, grads, self.bufs, self.sq_bufs, self.step_count, self.lr, self.weight_decay)
        return losses.detach()  # (holding the autograd graph would keep its gradient accumulators alive)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        self.x.copy_(x)
        self.y.copy_(y)
        self.lr.fill_(lr)
        if self.graph is None and self.eager_steps < WARMUP_STEPS:
            self.stream = self.stream or torch.cuda.Stream()
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                for p in self.params:
                    p.grad = None
                losses = self.step_eagerly()
            torch.cuda.current_stream().wait_stream(self.stream)
            self.eager_steps += 1
            return losses
        if self.graph is None:
            for p in self.params:
                p.grad = None  # the captured backward writes the gradients into buffers of its own
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self.losses = self.step_eagerly()
        self.graph.replay()
        return self.losses
