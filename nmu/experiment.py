"""An experiment = profile + dataset + seeds; it hands out splits and the cached original and
retrained models that every unlearning run is compared against.

    exp = Experiment("quick", seed=0)
    original = exp.original()                      # trained once, then loaded from the cache
    split = exp.split("random", fraction=0.1)
    retrained = exp.retrain(split)                 # same initial weights and recipe, D_r only

Seeds are separate: ``init_seed`` (model weights), ``data_seed`` (batch order and augmentation)
and ``split_seed`` (random forget sets); each defaults to ``seed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from nmu.cache import cached, checkpoint_path, code_digest, load_weights
from nmu.data import Dataset, load_dataset, subsample
from nmu.models import Classifier, build_model
from nmu.profiles import Profile, get_profile
from nmu.splits import SPLIT_ARGS, Split, class_split, hardest_split, random_split, subclass_split
from nmu.train import FitResult, Recipe, default_device, fit, gpu_mode, resolve_precision

TRAINING_CODE = ("nmu.data", "nmu.experiment", "nmu.graphs", "nmu.models", "nmu.train")
"""The modules whose code determines a trained model: part of its cache key (:func:`code_digest`)."""


@dataclass
class TrainedModel:
    model: Classifier
    seconds: float
    """Wall-clock training time of the run that made it (not of loading it)."""
    sample_loss: torch.Tensor
    """Mean training loss of each training sample over the run (the difficulty score)."""
    path: Path
    was_cached: bool


def check_seed(name: str, value: object) -> int:
    """``value`` if it is a usable seed (a whole number from 0 to 2**32 - 1), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32:
        raise ValueError(f"{name} must be a whole number from 0 to 2**32 - 1, got {value!r}")
    return value


class Experiment:
    def __init__(self, profile: str | Profile = "quick", dataset: str | None = None, arch: str | None = None,
                 seed: int = 0, *, init_seed: int | None = None, data_seed: int | None = None,
                 split_seed: int | None = None, root: str | Path | None = None,
                 device: str | torch.device | None = None, precision: str = "auto", progress: bool = True,
                 executor: str | dict = "inline", recipe: Recipe | dict | None = None):
        for name, value in (("seed", seed), ("init_seed", init_seed), ("data_seed", data_seed),
                            ("split_seed", split_seed)):
            if value is not None:
                check_seed(name, value)
        self.profile = get_profile(profile)
        self.dataset_name = dataset or self.profile.dataset
        self.root = Path(root) if root is not None else None
        self.data: Dataset = load_dataset(self.dataset_name, self.root)
        per_class = self.profile.per_class_for(self.data.name)
        if per_class is not None:
            self.data = subsample(self.data, per_class)
        self.arch = arch or self.profile.arch_for(self.data.name)
        self.recipe = Recipe(**recipe) if isinstance(recipe, dict) else recipe or self.profile.recipe_for(self.data.name)
        """Original training and retraining: the profile's for this dataset unless ``recipe`` is given."""
        self.init_seed = seed if init_seed is None else init_seed
        self.data_seed = seed if data_seed is None else data_seed
        self.split_seed = seed if split_seed is None else split_seed
        self.device = torch.device(device) if device is not None else default_device()
        self.precision = resolve_precision(precision, self.device)
        self.progress = progress
        self.executor = executor
        """Where missing models and runs are computed: ``"inline"`` (this process), or through jobs
        (``"local"``, ``"slurm"`` or a dict of options; see :mod:`nmu.jobs`)."""

    def __repr__(self) -> str:
        return (f"Experiment(profile={self.profile.name!r}, data={self.data.name!r} "
                f"({len(self.data.train_labels)} train / {len(self.data.test_labels)} test), arch={self.arch!r}, "
                f"seeds init/data/split={self.init_seed}/{self.data_seed}/{self.split_seed}, "
                f"device={self.device.type}, precision={self.precision})")

    @cached_property
    def data_fingerprint(self) -> str:
        h = hashlib.sha256(self.data.train_images.numpy().tobytes())
        h.update(self.data.train_labels.numpy().tobytes())
        return h.hexdigest()[:16]

    def new_model(self) -> Classifier:
        """The untrained model every original and retrain run of this experiment starts from."""
        return build_model(self.arch, self.data.num_classes, self.data.mean, self.data.std, seed=self.init_seed)

    def original(self) -> TrainedModel:
        """The model trained on the whole training set (cached)."""
        return self._trained("original", None)

    def retrain(self, split: Split) -> TrainedModel:
        """The gold standard: the same recipe and initial weights, trained on D_r only (cached)."""
        return self._trained("retrain", split.validate(len(self.data.train_labels)))

    def split(self, kind: str, *, fraction: float | None = None, cls: str | int | None = None) -> Split:
        """A forget split: ``random``/``hardest`` take ``fraction``; ``class``/``subclass`` take ``cls``."""
        if kind not in SPLIT_ARGS:
            raise ValueError(f"unknown split kind {kind!r}; use one of {list(SPLIT_ARGS)}")
        if {"fraction": fraction, "cls": cls}[SPLIT_ARGS[kind]] is None:
            example = "fraction=0.1" if SPLIT_ARGS[kind] == "fraction" else "cls=, a class name or index"
            raise ValueError(f"a {kind} split needs {example}")
        d = self.data
        if kind == "random":
            return random_split(d.train_labels, fraction, self.split_seed)
        if kind == "hardest":
            return hardest_split(self.original().sample_loss, fraction)
        if kind == "class":
            return class_split(d.train_labels, cls, d.classes)
        return subclass_split(d.train_fine, cls, d.fine_classes)

    def cache_fields(self, kind: str, split: Split | None = None) -> dict:
        """Everything that determines a ``kind`` model of this experiment (its checkpoint key). On a CPU
        that includes the intra-op thread count: floating-point reductions, hence the trained
        weights, differ between thread counts; on a GPU, the cuDNN mode and CUDA graphs (:func:`nmu.train.gpu_mode`).
        ``code`` is the digest of :data:`TRAINING_CODE`."""
        return {"kind": kind, "dataset": self.data.name, "data": self.data_fingerprint, "arch": self.arch,
                "recipe": self.recipe.to_dict(), "init_seed": self.init_seed, "data_seed": self.data_seed,
                "split": split.checksum if split is not None else None, "precision": self.precision,
                "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
                "gpu": gpu_mode(self.device), "code": code_digest(*TRAINING_CODE)}

    def checkpoint(self, kind: str, split: Split | None = None) -> Path:
        """Where the ``original`` / ``retrain`` checkpoint of this experiment lives (trained or not)."""
        return checkpoint_path(kind, self.cache_fields(kind, split), self.root)

    def train(self, split: Split | None = None, desc: str = "train") -> tuple[Classifier, FitResult]:
        """Train the untrained model on D_r of ``split`` (all the training data if None) with the
        experiment's recipe, uncached: what :meth:`original` and :meth:`retrain` cache."""
        model = self.new_model()
        images, labels = split.retain_set(self.data) if split is not None else (self.data.train_images,
                                                                                 self.data.train_labels)
        result = fit(model, images, labels, self.recipe, seed=self.data_seed, device=self.device,
                     precision=self.precision, record_losses=True, progress=self.progress, desc=desc)
        return model, result

    def _trained(self, kind: str, split: Split | None) -> TrainedModel:
        fields = self.cache_fields(kind, split)

        def build() -> dict:
            model, result = self.train(split, desc=f"{kind} {self.data.name}")
            return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "seconds": result.seconds, "sample_loss": result.sample_loss}

        record, was_cached = cached(kind, fields, build, self.root)
        path = checkpoint_path(kind, fields, self.root)
        model = self.new_model()
        load_weights(model, record, path)
        model.to(device=self.device, memory_format=torch.channels_last).eval()
        return TrainedModel(model, float(record["seconds"]), record["sample_loss"], path, was_cached)
