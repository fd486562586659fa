"""The three run profiles, defined here and nowhere else.

========  =========================================  ==========================================
profile   data and model                             original / retrain recipe
========  =========================================  ==========================================
smoke     ``digits`` (8x8, offline), tinycnn         SGD, 15 epochs: seconds on a CPU; for tests/CI
quick     real CIFAR-10 (1,000 training images per   SGD, 30 epochs, bf16 where native: about
          class) and CIFAR-100/20 (100 per class),   2 min per model on 2 CPU cores
          full test sets, smallcnn16 (0.14 M)
paper     the paper's models (docs/method.md,        SGD lr 0.1, 100 epochs, warm-up 2, x0.1 at 60/80 %
          "Protocol"), for a GPU
========  =========================================  ==========================================

A profile also owns its unlearning hyperparameters (``Profile.presets``, read from its section of
``presets.yaml``), so everything a run depends on is found from the profile.

Why the quick profile trains a small model long on a fifth of each training set: unlearning is only a
problem when the original has memorised its training samples (train accuracy well above test
accuracy, as the paper's 100-epoch models have). A CPU cannot afford that on all 50,000 images;
on 10,000 images 30 epochs reach 87 % train / 76 % test accuracy on CIFAR-10 and 61 % / 41 % on
CIFAR-100 (100 per class), each in under two minutes. Its hardest-samples setting forgets the hardest
10 % only: the hardest 1 % are samples such an original never fitted (about 1 % train accuracy on
them), so forgetting them tests little.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from nmu.data import DATASETS, base_name
from nmu.train import Recipe

PRESETS_FILE = Path(__file__).with_name("presets.yaml")


@lru_cache(maxsize=None)
def load_presets(section: str, path: Path = PRESETS_FILE) -> dict[str, dict[str, dict]]:
    """One profile's section of a presets file: ``{"default" | "<dataset>-<kind>": {method: hparams}}``."""
    table = yaml.safe_load(Path(path).read_text()) or {}
    if section not in table:
        raise ValueError(f"{path} has no section {section!r}; its sections are {sorted(table)}")
    return table[section]


@dataclass(frozen=True)
class ClassWise:
    """A profile's class-wise settings: full-class forgetting on ``full``, sub-class forgetting on
    ``coarse`` (its coarse-label version), of each class in ``classes``."""

    full: str
    coarse: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str
    """Default dataset of the profile (single-setting notebooks: quickstart, robustness, ...)."""
    archs: dict[str, str]
    """Architecture per dataset; the key ``"*"`` covers every other dataset."""
    recipe: Recipe
    """Original training and retraining."""
    overrides: dict[str, dict] = field(default_factory=dict)
    """Per-dataset changes to ``recipe`` (e.g. batch 256 and crop padding 8 for TinyImageNet)."""
    train_per_class: int | Mapping[str, int | None] | None = None
    """Train on a class-balanced subset of this many images per class (fixed seed 0; the test set
    stays whole), one number or one per dataset (``"*"`` = the rest); ``None`` = the whole training set."""
    sample_wise: tuple[str, ...] = ("cifar10",)
    """Datasets of the sample-wise settings (random and hardest forgetting)."""
    class_wise: ClassWise = ClassWise("cifar100", "cifar20", ("rocket",))
    """Class-wise settings: the full-class dataset, its coarse-label version, the classes to forget."""
    hardest_fractions: tuple[float, ...] = (0.01, 0.1)
    """Sizes of the hardest-samples forgetting sets (a fraction of the training set each)."""
    exp_seeds: tuple[int, ...] = (0, 1, 2)
    """Experiment seeds of the reported tables (each: its own original, forget set and retrained model)."""
    presets: Mapping[str, Mapping[str, dict]] = field(default_factory=dict)
    """Unlearning hyperparameters: ``{"default": {method: {...}}, "<dataset>-<kind>": {method: {...}}}``
    (see presets.yaml)."""
    description: str = ""

    def hyperparameters(self, method: str, dataset: str, kind: str,
                        overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``method``'s hyperparameters for a setting: its code defaults < the profile's ``default`` <
        the setting's (``<dataset>-<kind>``; ``hardest`` uses ``random``'s, as the paper does) < ``overrides``."""
        setting = self.presets.get(setting_name(dataset, kind), {})
        return {**self.presets.get("default", {}).get(method, {}), **setting.get(method, {}), **(overrides or {})}

    def arch_for(self, dataset: str) -> str:
        return self.archs.get(base_name(dataset), self.archs["*"])

    def per_class_for(self, dataset: str) -> int | None:
        """Training images per class for ``dataset`` (None: all of them)."""
        if not isinstance(self.train_per_class, Mapping):
            return self.train_per_class
        return self.train_per_class.get(base_name(dataset), self.train_per_class.get("*"))

    def recipe_for(self, dataset: str) -> Recipe:
        return self.recipe.with_(**self.overrides.get(base_name(dataset), {}))

    def datasets(self) -> tuple[str, ...]:
        """Every data set the profile's notebooks read, by base name (cifar20 is cifar100's images)."""
        names = (self.dataset, *self.sample_wise, self.class_wise.full, self.class_wise.coarse)
        return tuple(dict.fromkeys(base_name(n) for n in names))

    def archives(self) -> tuple[str, ...]:
        """The archive file names ``make data`` unpacks for this profile (its data sets' in :data:`DATASETS`)."""
        return tuple(a for d in self.datasets() for _, names in DATASETS[d].folders for a in names)


def setting_name(dataset: str, kind: str) -> str:
    """``<dataset>-<kind>``, the key of a setting in a profile's presets (hardest shares random's)."""
    return f"{dataset}-{'random' if kind == 'hardest' else kind}"


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", "digits", {"*": "tinycnn"},
        Recipe(epochs=15, lr=0.05, batch_size=64, weight_decay=5e-4, warmup_epochs=1, crop_padding=1),
        sample_wise=("digits",), class_wise=ClassWise("digits", "digits-coarse", ("3",)), exp_seeds=(0, 1),
        presets=load_presets("smoke"),
        description="8x8 digits and a 4-channel-wide CNN: every notebook in seconds on a CPU"),
    "quick": Profile(
        "quick", "cifar10", {"*": "smallcnn16"},
        Recipe(epochs=30, lr=0.1, batch_size=128, weight_decay=5e-4, warmup_epochs=1),
        train_per_class={"cifar10": 1000, "cifar100": 100}, sample_wise=("cifar10", "cifar100"),
        class_wise=ClassWise("cifar100", "cifar20", ("rocket",)), hardest_fractions=(0.1,),
        presets=load_presets("quick"),
        description="real CIFAR-10 (1,000 training images per class) and CIFAR-100/20 (100 per class) "
                    "with a 0.14 M-parameter CNN on a CPU"),
    "paper": Profile(
        "paper", "cifar10",
        {"cifar10": "vgg16_bn", "cifar100": "resnet18", "cifar20": "resnet18", "tinyimagenet": "resnet34",
         "*": "resnet18"},
        Recipe(epochs=100, lr=0.1, batch_size=128, weight_decay=5e-4, warmup_epochs=2),
        overrides={"tinyimagenet": {"batch_size": 256, "crop_padding": 8}},
        sample_wise=("cifar10", "cifar100", "tinyimagenet"),
        class_wise=ClassWise("cifar100", "cifar20", ("rocket", "mushroom", "baby", "lamp", "sea")),
        presets=load_presets("paper"),
        description="the paper's models and 100-epoch recipe (docs/method.md), for a GPU"),
}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
