"""One entry point for every unlearning method: ``unlearn(name, model, data, split, **hparams)``.

A method is a function ``method(task: Task, **hparams) -> nn.Module`` registered in ``METHODS``;
it receives a :class:`Task` (a private copy of the original model, the data and the split) and
returns the unlearned model. :func:`unlearn` checks the hyperparameters against the method's
signature, copies the model, times the run (CUDA-synchronised) and returns an :class:`UnlearnResult`.
Retraining, the gold standard every method is compared with, is not a method: it is
:meth:`nmu.experiment.Experiment.retrain` (trained once, cached).

The training stream, the same for every fine-tuning method (:meth:`Task.finetune`): remaining
samples (D_r) get the original training recipe's random crop + flip; the samples a method adds
(NatMU's hybrids, relabelled D_f) are used as they are, except for the baselines whose reference
trains on D_f alone, augmented, in train mode (GA, Boundary Shrink: ``augment_extra``); both are
shuffled into one stream. See ``docs/method.md`` ("Augmentation policy"). A method may report
numbers about its run in :attr:`Task.info` (returned as :attr:`UnlearnResult.info`).
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from nmu.data import Dataset
from nmu.models import reset_head
from nmu.splits import Split
from nmu.train import LossFn, Recipe, default_device, fit, resolve_precision


@dataclass
class Task:
    """What an unlearning method works on. ``model`` is a private copy: methods may change it.
    The D_f / D_r tensors are gathered once, on first use."""

    model: nn.Module
    data: Dataset
    split: Split
    seed: int = 0
    device: torch.device = field(default_factory=default_device)
    precision: str = "auto"
    progress: bool = True
    crop_padding: int = 4
    """Crop padding of D_r's augmentation: the original training recipe's (4 for CIFAR, 8 for TinyImageNet)."""
    info: dict[str, Any] = field(default_factory=dict)
    """What a method reports about its run beyond the model (e.g. SSD's ``ssd_dampened_share``): returned
    as :attr:`UnlearnResult.info` and merged into the run's record by :func:`nmu.artefacts.cached_run`."""

    @cached_property
    def forget_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """D_f: its training images and labels."""
        return self.split.forget_set(self.data)

    @cached_property
    def retain_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """D_r: its training images and labels."""
        return self.split.retain_set(self.data)

    @property
    def forget_images(self) -> torch.Tensor:
        return self.forget_set[0]

    @property
    def forget_labels(self) -> torch.Tensor:
        return self.forget_set[1]

    @property
    def retain_images(self) -> torch.Tensor:
        return self.retain_set[0]

    @property
    def retain_labels(self) -> torch.Tensor:
        return self.retain_set[1]

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def finetune(self, extra_images: torch.Tensor | None = None, extra_labels: torch.Tensor | None = None, *,
                 retain: bool = True, lr: float, weight_decay: float, epochs: int = 5, batch_size: int = 128,
                 loss_fn: Callable[[torch.Tensor], LossFn] | None = None, optimizer: str = "adamw",
                 augment_extra: bool = False, desc: str = "unlearn") -> None:
        """Fine-tune ``self.model`` on the unlearning stream: D_r with crop + flip (unless ``retain`` is
        False) followed by ``extra_images`` / ``extra_labels``, shuffled together. Per-step cosine
        decay to 0, no warm-up. ``loss_fn(is_extra)`` builds the per-sample loss from the stream's
        is-extra flags (on the task's device, indexed by each batch's ``idx``); default cross-entropy.

        ``optimizer``: ``"adamw"`` (the shared default) or ``"sgd"`` (momentum 0.9, for the baselines
        whose reference runs SGD: l1-sparse, Boundary Shrink). ``augment_extra``: give the extra
        samples the same crop + flip as D_r; off by default (the augmentation policy, docs/method.md),
        on only for baselines whose reference feeds D_f augmented (GA, Boundary Shrink)."""
        xs, ys, extra = [], [], []
        if retain:
            xs.append(self.retain_images)
            ys.append(self.retain_labels)
            extra.append(torch.zeros(len(self.retain_labels), dtype=torch.bool))
        if extra_images is not None:
            if extra_labels is None or len(extra_labels) != len(extra_images):
                raise ValueError(f"need one label per extra image: {len(extra_images)} images, "
                                 f"{None if extra_labels is None else len(extra_labels)} labels")
            xs.append(extra_images)
            ys.append(extra_labels.to(torch.int64).cpu())
            extra.append(torch.ones(len(extra_labels), dtype=torch.bool))
        if not xs:
            raise ValueError("nothing to train on: neither D_r nor extra samples given")
        is_extra = torch.cat(extra)
        recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                        optimizer=optimizer, momentum=0.9, schedule="cosine", crop_padding=self.crop_padding)
        result = fit(self.model, torch.cat(xs), torch.cat(ys), recipe, seed=self.seed,
                     no_augment=None if augment_extra else is_extra,
                     loss_fn=loss_fn(is_extra.to(self.device)) if loss_fn is not None else None,
                     device=self.device, precision=self.precision, progress=self.progress, desc=desc)
        if self.device.type == "cuda":  # which trainer ran, for the run's record (a GPU's only: a CPU has one)
            self.info["cuda_graph"] = self.info.get("cuda_graph", True) and result.graphed

    def reset_head(self) -> None:
        """Re-initialise the weights of the model's final linear layer (class-wise settings; the bias is
        kept, :func:`nmu.models.reset_head`), seeded by the task."""
        if not isinstance(getattr(self.model, "head", None), nn.Linear):
            raise TypeError("head_reinit needs a model with a linear `.head` (an nmu.models.Classifier)")
        reset_head(self.model, self.seed)

    def frozen_copy(self) -> nn.Module:
        """A frozen eval-mode copy of the model as it is now (a teacher)."""
        return frozen(self.model)


def frozen(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``model``."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


Method = Callable[..., nn.Module]
METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    def add(fn: Method) -> Method:
        METHODS[name] = fn
        return fn
    return add


def check_method(method: Any) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return method


def check_hparams(method: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of ``hparams`` against ``METHODS[method]``'s signature (its defaults'
    types: an int where a float is expected is fine, a string or a fraction of an epoch is not)."""
    params = {n: p for n, p in inspect.signature(METHODS[check_method(method)]).parameters.items() if n != "task"}
    unknown = sorted(set(hparams) - set(params))
    if unknown:
        raise TypeError(f"{method} does not take {unknown}; its hyperparameters are {sorted(params)}")
    for name, value in hparams.items():
        default = params[name].default
        if default is None or default is inspect.Parameter.empty:
            continue
        expected = type(default)
        ok = (isinstance(value, bool) if expected is bool else
              isinstance(value, int) and not isinstance(value, bool) if expected is int else
              isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else
              isinstance(value, expected))
        if not ok:
            raise TypeError(f"{method}: hyperparameter {name}={value!r} must be {expected.__name__} "
                            f"(default {default!r}), got {type(value).__name__}")
    return hparams


@dataclass
class UnlearnResult:
    method: str
    model: nn.Module
    seconds: float
    hparams: dict
    info: dict = field(default_factory=dict)
    """The method's :attr:`Task.info` (numbers about the run, e.g. SSD's dampened share)."""


def unlearn(method: str, model: nn.Module, data: Dataset, split: Split, *, seed: int = 0,
            device: torch.device | str | None = None, precision: str = "auto", progress: bool = True,
            crop_padding: int = 4, **hparams) -> UnlearnResult:
    """Run ``method`` on a copy of ``model`` (the original is untouched) and time it.

    ``hparams`` go to the method (see ``METHODS[method]``'s signature). ``crop_padding`` is the
    original training recipe's (D_r's augmentation during fine-tuning).
    """
    check_hparams(method, hparams)
    device = torch.device(device) if device is not None else default_device()
    split.validate(len(data.train_labels))
    task = Task(copy.deepcopy(model).to(device), data, split, seed, device,
                resolve_precision(precision, device), progress, crop_padding)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = METHODS[method](task, **hparams)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return UnlearnResult(method, out.eval(), time.perf_counter() - start, dict(hparams), dict(task.info))
