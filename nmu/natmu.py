"""NatMU, the whole method (He et al., "Towards Natural Machine Unlearning"; docs/method.md).

Each forgetting image x_f is blended with K correctly labelled remaining images x_r:

    x_hat = M_k * x_f + (1 - M_k) * x_r,    label(x_hat) = y_r,

where M_k is one of four fixed "gradual" masks (the weight of the forgetting image) and x_r is of
the k-th most probable wrong class under the original model. The model is then fine-tuned on
D_r (augmented) plus the K * |D_f| hybrids (as they are): the injected, correctly labelled
evidence takes over and the forgotten information is suppressed "naturally".

Two choices the paper leaves open, made here:
- **Class balance.** Every request is served by a distinct remaining image. Requests are served
  rank by rank (each sample's most probable wrong class first); when a class has fewer images
  left than requests, the samples that find it most probable get them and the others fall back
  to their next most probable class not yet used. A sample never gets its own (super)class. (The
  reference code caps each class at 0.98 |D_r| / C requests and moves the excess to a random rarely
  requested class, which can fail; docs/method.md.)
- **Fewer than K other classes** (C - 1 < K): classes are reused in rank order, each hybrid still
  with its own remaining image and mask. Hybrid k uses mask k mod 4.
Hybrids are rounded to uint8 (at most 0.5/255 per pixel) so they join D_r in the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nmu.train import predict
from nmu.unlearn import Task, register


def masks(size: int | tuple[int, int], delta: float = 0.0) -> torch.Tensor:
    """The four gradual masks, float (4, H, W): weight of the forgetting image, in [0, 1].

    With the tent profile t(i) = min(i, n-1-i) / (n/2): P1 = t(row), P2 = t(col),
    P3 = (b-1)/b - t(row), P4 = (b-1)/b - t(col) (b = n/2), each shifted by ``delta`` and clipped.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h < 2 or w < 2:
        raise ValueError(f"masks need images of at least 2x2 pixels, got {h}x{w}")

    def tent(n: int) -> tuple[torch.Tensor, float]:
        i = torch.arange(n, dtype=torch.float64)
        b = n / 2
        return torch.minimum(i, n - 1 - i) / b, (b - 1) / b

    tr, top_r = tent(h)
    tc, top_c = tent(w)
    top = min(top_r, top_c)
    if delta >= 1 or delta <= -top:
        what = ("all 1: the forgetting image alone, i.e. pure relabelling" if delta >= 1
                else "all 0: the injected remaining image alone")
        raise ValueError(f"delta={delta} makes every mask constant ({what}), which is not NatMU; use "
                         f"-{top:.3g} < delta < 1 (the paper's values lie in [-0.19, 0.045])")
    rows, cols = tr[:, None].expand(h, w), tc[None, :].expand(h, w)
    patterns = torch.stack([rows, cols, top_r - rows, top_c - cols])
    return (patterns + delta).clamp(0, 1).float()


@dataclass
class Hybrids:
    """The K * |D_f| hybrids and where each came from (indices into the arrays given)."""

    images: torch.Tensor      # uint8 (n, C, H, W)
    labels: torch.Tensor      # int64 (n,): the injected remaining image's label
    forget_index: np.ndarray  # which forgetting sample
    retain_index: np.ndarray  # which remaining image (all distinct)
    mask_index: np.ndarray    # which of the 4 masks


def rank_other_classes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Other classes of each sample by the model's probability (eval mode, un-augmented).

    Returns ``(classes, probs)``, both (n, C-1), most probable first; the own class is excluded.
    """
    p = predict(model, images, device=device).double().softmax(1)
    p[torch.arange(len(labels)), labels] = -1.0  # the own class sorts last, even below a p of 0
    order = p.argsort(dim=1, descending=True, stable=True)[:, :-1]
    return order.numpy(), p.gather(1, order).numpy()


def assign_injections(ranked: np.ndarray, probs: np.ndarray, retain_labels: np.ndarray, k: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick a distinct remaining image for each of the K hybrids of each forgetting sample.

    ``ranked``/``probs`` come from :func:`rank_other_classes`; ``retain_labels`` are D_r's labels.
    Returns ``(forget_index, slot, retain_index)`` with one row per hybrid: slot s of a sample is
    served by its s-th most probable class that still had images (see the module docstring).
    """
    n, width = ranked.shape
    if n == 0:
        raise ValueError("the forgetting set is empty: nothing to unlearn")
    if width == 0:
        raise ValueError("NatMU needs at least two classes")
    retain_labels = np.asarray(retain_labels)
    supply = np.bincount(retain_labels, minlength=int(max(ranked.max(), retain_labels.max())) + 1)
    if supply[np.unique(ranked)].sum() < k * n:
        raise ValueError(f"NatMU needs {k} x {n} = {k * n} distinct remaining images of the forgetting "
                         f"samples' other classes but D_r has only {supply[np.unique(ranked)].sum()}: "
                         "use a smaller k or a larger remaining set")
    filled = np.zeros(n, dtype=np.int64)
    took_f, took_s, took_c = [], [], []
    for r in range(k * width):  # round r: every unfinished sample asks for its next class
        col = r % width
        active = np.flatnonzero(filled < k)
        if active.size == 0:
            break
        cls, pr = ranked[active, col], probs[active, col]
        order = np.lexsort((active, -pr, cls))  # by class, then most probable first
        cls_sorted = cls[order]
        rank_in_class = np.arange(order.size) - np.searchsorted(cls_sorted, cls_sorted)
        granted = order[rank_in_class < supply[cls_sorted]]
        got = active[granted]
        took_f.append(got)
        took_s.append(filled[got].copy())
        took_c.append(cls[granted])
        np.subtract.at(supply, cls[granted], 1)
        filled[got] += 1
    if (filled < k).any():
        short = np.flatnonzero(filled < k)
        raise ValueError(f"{short.size} forgetting samples could not get {k} remaining images of other "
                         f"classes (e.g. sample {short[0]}): D_r is too small for k={k}")
    forget_index, slot, cls = np.concatenate(took_f), np.concatenate(took_s), np.concatenate(took_c)
    # Serve each class's requests with a random permutation of its images: distinct by construction.
    rng = np.random.default_rng(seed)
    pool_order = np.lexsort((rng.random(retain_labels.size), retain_labels))
    pool_start = np.searchsorted(retain_labels[pool_order], np.arange(supply.size))
    by_class = np.argsort(cls, kind="stable")
    position = np.empty_like(by_class)
    position[by_class] = np.arange(by_class.size) - np.searchsorted(cls[by_class], cls[by_class])
    retain_index = pool_order[pool_start[cls] + position]
    keep = np.lexsort((slot, forget_index))
    return forget_index[keep], slot[keep], retain_index[keep]


def make_hybrids(model: nn.Module, forget_images: torch.Tensor, forget_labels: torch.Tensor,
                 retain_images: torch.Tensor, retain_labels: torch.Tensor, *, k: int = 4,
                 delta: float = 0.0, seed: int = 0, device: torch.device | str | None = None) -> Hybrids:
    """Steps 1-5 of NatMU: rank classes with ``model``, assign injections, blend with the masks."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ranked, probs = rank_other_classes(model, forget_images, forget_labels, device)
    fi, slot, ri = assign_injections(ranked, probs, retain_labels.numpy(), k, seed)
    m = masks(tuple(forget_images.shape[-2:]), delta)[slot % 4].unsqueeze(1)  # (n, 1, H, W)
    xf, xr = forget_images[torch.from_numpy(fi)].float(), retain_images[torch.from_numpy(ri)].float()
    blend = (m * xf + (1 - m) * xr).round_().clamp_(0, 255).to(torch.uint8)
    return Hybrids(blend, retain_labels[torch.from_numpy(ri)], fi, ri, slot % 4)


@register("natmu")
def natmu(task: Task, *, lr: float = 1e-3, weight_decay: float = 2e-3, delta: float = -0.19, k: int = 4,
          epochs: int = 5, batch_size: int = 128, head_reinit: bool = False) -> nn.Module:
    """Fine-tune on augmented D_r plus the K * |D_f| hybrids (docs/method.md, step 6).

    ``head_reinit`` (full-class forgetting) re-initialises the linear head after the class choice.
    """
    hybrids = make_hybrids(task.model, task.forget_images, task.forget_labels, task.retain_images,
                           task.retain_labels, k=k, delta=delta, seed=task.seed, device=task.device)
    if head_reinit:
        task.reset_head()
    task.finetune(hybrids.images, hybrids.labels, lr=lr, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, desc="natmu")
    return task.model
