"""One entry point for every unlearning method: ``unlearn(name, model, data, split, **hparams)``.

A method is a function ``method(task: Task, **hparams) -> nn.Module`` registered in ``METHODS``;
it receives a :class:`Task` (a private copy of the original model, the data and the split) and
returns the unlearned model. :func:`unlearn` copies the model, times the run (CUDA-synchronised)
and returns an :class:`UnlearnResult`.

Augmentation policy, the same for every fine-tuning method: remaining samples (D_r) get the
training recipe's random crop + flip; forgetting samples and anything derived from them (NatMU's
hybrids, relabelled or ascended D_f) are used as they are.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from nmu.data import Dataset
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
    fresh_model: Callable[[], nn.Module] | None = None
    """Builds the untrained model the original started from (needed by ``retrain`` only)."""
    train_recipe: Recipe | None = None
    """The original training recipe: ``retrain`` trains with it; fine-tuning takes its crop padding."""

    @cached_property
    def forget_images(self) -> torch.Tensor:
        return self.data.train_images[torch.from_numpy(self.split.forget)]

    @cached_property
    def forget_labels(self) -> torch.Tensor:
        return self.data.train_labels[torch.from_numpy(self.split.forget)]

    @cached_property
    def retain_images(self) -> torch.Tensor:
        return self.data.train_images[torch.from_numpy(self.split.retain)]

    @cached_property
    def retain_labels(self) -> torch.Tensor:
        return self.data.train_labels[torch.from_numpy(self.split.retain)]

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def crop_padding(self) -> int:
        """Crop padding for D_r: the original training recipe's if known, else 4 (CIFAR's)."""
        return self.train_recipe.crop_padding if self.train_recipe is not None else 4

    def finetune(self, images: torch.Tensor, labels: torch.Tensor, *, lr: float, weight_decay: float,
                 epochs: int = 5, batch_size: int = 128, no_augment: torch.Tensor | None = None,
                 loss_fn: LossFn | None = None, desc: str = "unlearn") -> None:
        """Fine-tune ``self.model`` with the package's unlearning recipe: AdamW, per-step cosine decay
        to 0, no warm-up; crop + flip on every sample not marked in ``no_augment``."""
        recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                        optimizer="adamw", schedule="cosine", crop_padding=self.crop_padding)
        fit(self.model, images, labels, recipe, seed=self.seed, no_augment=no_augment, loss_fn=loss_fn,
            device=self.device, precision=self.precision, progress=self.progress, desc=desc)


Method = Callable[..., nn.Module]
METHODS: dict[str, Method] = {}


def register(name: str) -> Callable[[Method], Method]:
    def add(fn: Method) -> Method:
        METHODS[name] = fn
        return fn
    return add


@dataclass
class UnlearnResult:
    method: str
    model: nn.Module
    seconds: float
    hparams: dict


def unlearn(method: str, model: nn.Module, data: Dataset, split: Split, *, seed: int = 0,
            device: torch.device | str | None = None, precision: str = "auto", progress: bool = True,
            fresh_model: Callable[[], nn.Module] | None = None, train_recipe: Recipe | None = None,
            **hparams) -> UnlearnResult:
    """Run ``method`` on a copy of ``model`` (the original is untouched) and time it.

    ``hparams`` go to the method (see ``METHODS[method]``'s signature). ``train_recipe`` (the
    original training recipe) sets the crop padding of fine-tuning and, with ``fresh_model``, is
    what ``retrain`` needs.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    fn = METHODS[method]
    accepted = [p for p in inspect.signature(fn).parameters if p != "task"]
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise TypeError(f"{method} does not take {unknown}; its hyperparameters are {accepted}")
    device = torch.device(device) if device is not None else default_device()
    split.validate(len(data.train_labels))
    task = Task(copy.deepcopy(model).to(device), data, split, seed, device,
                resolve_precision(precision, device), progress, fresh_model, train_recipe)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn(task, **hparams)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return UnlearnResult(method, out.eval(), time.perf_counter() - start, dict(hparams))

