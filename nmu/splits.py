"""Forget splits: which training samples to forget (D_f) and which remain (D_r).

A :class:`Split` is a pair of sorted int64 index arrays into the training set, with a checksum
that keys cached retrain models. Kinds:

- ``random``: a class-balanced random fraction (round(p * n_c) samples of each class c);
- ``hardest``: the top fraction by a per-sample difficulty score. nmu's score is the **mean
  training loss of each sample over the original model's whole training run** (recorded with
  augmentation, in training mode), so hard = slow or never learnt; ties broken by index;
- ``class``: every training sample of one class (by name or index);
- ``subclass``: every training sample of one fine class under coarse labels (e.g. CIFAR-20);
- ``custom``: user-supplied index files (``Split.from_files``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nmu.storage import atomic_write

SAMPLE_WISE = ("random", "hardest", "custom")
"""Split kinds that forget samples (Avg. Gap over Acc D_t, D_r, D_f and MIA)."""
CLASS_WISE = ("class", "subclass")
"""Split kinds that forget a (fine) class (Avg. Gap over Acc D_rt, D_ft, D_r, D_f and MIA)."""
SPLIT_ARGS = {"random": "fraction", "hardest": "fraction", "class": "cls", "subclass": "cls"}
"""The kinds :meth:`nmu.experiment.Experiment.split` makes, and the argument each takes."""


@dataclass(frozen=True)
class Split:
    kind: str
    forget: np.ndarray
    retain: np.ndarray
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("forget", "retain"):
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "iu":
                raise TypeError(f"{name} indices must be integers, got dtype {arr.dtype}")
            object.__setattr__(self, name, np.sort(arr.astype(np.int64).ravel()))

    def forget_set(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """D_f of ``data`` (an :class:`nmu.data.Dataset`): its training images and labels."""
        return self._take(data, self.forget)

    def retain_set(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """D_r of ``data``: its training images and labels."""
        return self._take(data, self.retain)

    @staticmethod
    def _take(data, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(index)
        return data.train_images[idx], data.train_labels[idx]

    @property
    def checksum(self) -> str:
        h = hashlib.sha256(self.forget.tobytes() + b"|" + self.retain.tobytes())
        return h.hexdigest()[:16]

    def validate(self, n: int) -> "Split":
        """Check the indices against a training set of ``n`` samples; returns ``self``."""
        for name, arr in (("forget", self.forget), ("retain", self.retain)):
            if arr.size == 0:
                raise ValueError(f"the {name} set is empty: a split needs at least one sample in each set")
            bad = arr[(arr < 0) | (arr >= n)]
            if bad.size:
                raise ValueError(f"{name} indices out of range [0, {n}): {bad[:5].tolist()}")
            dup = arr[1:][arr[1:] == arr[:-1]]
            if dup.size:
                raise ValueError(f"{name} indices repeat: {np.unique(dup)[:5].tolist()}")
        both = np.intersect1d(self.forget, self.retain)
        if both.size:
            raise ValueError(f"{both.size} indices are in both forget and retain sets, e.g. {both[:5].tolist()}")
        return self

    def save(self, directory: str | Path) -> Path:
        """Write ``forget.npy``, ``retain.npy`` and ``split.json`` (kind, sizes, checksum)."""
        d = Path(directory)
        for name in ("forget", "retain"):
            arr = getattr(self, name)
            atomic_write(d / f"{name}.npy", lambda tmp, a=arr: _save_npy(tmp, a))
        meta = {"kind": self.kind, "description": self.description, "checksum": self.checksum,
                "forget": int(self.forget.size), "retain": int(self.retain.size)}
        atomic_write(d / "split.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "Split":
        """Read a split written by :meth:`save`; a checksum mismatch raises."""
        d = Path(directory)
        meta = json.loads((d / "split.json").read_text())
        split = cls(meta["kind"], _load_npy(d / "forget.npy"), _load_npy(d / "retain.npy"), meta["description"])
        if split.checksum != meta["checksum"]:
            raise ValueError(f"{d}: the index files do not match split.json's checksum (edited by hand?)")
        return split

    @classmethod
    def from_files(cls, forget: str | Path, n: int, retain: str | Path | None = None) -> "Split":
        """A user-supplied split: ``.npy`` (or whitespace-separated text) index files; ``retain``
        defaults to every training index not forgotten."""
        f = _load_npy(Path(forget))
        r = _load_npy(Path(retain)) if retain is not None else np.setdiff1d(np.arange(n), f)
        return cls("custom", f, r, f"custom split from {forget}").validate(n)


def random_split(labels: torch.Tensor | np.ndarray, fraction: float, seed: int) -> Split:
    """Forget a class-balanced random ``fraction`` of the training set."""
    y = _labels(labels)
    _check_fraction(fraction)
    rng = np.random.default_rng(seed)
    forget = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: round(fraction * np.sum(y == c))]
                             for c in np.unique(y)])
    if forget.size == 0:
        sizes = np.unique(y, return_counts=True)[1]
        big, small = int(sizes.max()), int(sizes.min())
        every = (f", or fraction >= {smallest_fraction(small):g} for one of every class (the smallest has {small})"
                 if small < big else "")
        raise ValueError(f"the forget set is empty: a random {fraction:g} of each class rounds to no sample "
                         f"(round(fraction * class size); the largest class has {big} training samples). Use "
                         f"fraction >= {smallest_fraction(big):g}, the smallest that forgets a sample{every}")
    return _complement("random", forget, len(y), f"random {fraction:.0%} (class-balanced)")


def hardest_split(scores: torch.Tensor | np.ndarray, fraction: float) -> Split:
    """Forget the ``fraction`` of training samples with the highest difficulty ``scores``."""
    s = np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    _check_fraction(fraction)
    if not np.all(np.isfinite(s)):
        raise ValueError("difficulty scores contain NaN or inf")
    k = round(fraction * len(s))
    if k == 0:
        raise ValueError(f"the forget set is empty: the hardest {fraction:g} of {len(s)} training samples rounds "
                         f"to none (round(fraction * {len(s)})). Use fraction >= {smallest_fraction(len(s)):g}, "
                         "the smallest that forgets a sample")
    forget = np.lexsort((np.arange(len(s)), -s))[:k]  # highest score first, ties by lower index
    return _complement("hardest", forget, len(s), f"hardest {fraction:.0%} by mean training loss")


def class_split(labels: torch.Tensor | np.ndarray, cls: str | int, classes: Sequence[str]) -> Split:
    """Forget every training sample of class ``cls`` (a name or an index into ``classes``)."""
    c = _class_index(cls, classes)
    y = _labels(labels)
    return _complement("class", np.flatnonzero(y == c), len(y), f"full class {classes[c]!r}")


def subclass_split(fine_labels: torch.Tensor | np.ndarray | None, fine_class: str | int,
                   fine_classes: Sequence[str] | None) -> Split:
    """Forget every training sample of one fine class of a coarse-label dataset."""
    if fine_labels is None or fine_classes is None:
        raise ValueError("sub-class forgetting needs a dataset with fine labels "
                         "(cifar20, cifar10-coarse, digits-coarse)")
    c = _class_index(fine_class, fine_classes)
    y = _labels(fine_labels)
    return _complement("subclass", np.flatnonzero(y == c), len(y), f"sub-class {fine_classes[c]!r}")


def smallest_fraction(n: int, digits: int = 3) -> float:
    """The smallest fraction of ``digits`` significant digits that the splits round to at least one of
    ``n`` samples (``round(fraction * n) >= 1``; Python rounds 0.5 to 0, so it is just above ``0.5 / n``)."""
    exact = 0.5 / n
    decimals = digits - 1 - math.floor(math.log10(exact))
    fraction = math.floor(exact * 10 ** decimals) / 10 ** decimals
    while round(fraction * n) < 1:
        fraction = round(fraction + 10 ** -decimals, decimals)
    return fraction


def _complement(kind: str, forget: np.ndarray, n: int, description: str) -> Split:
    return Split(kind, forget, np.setdiff1d(np.arange(n), forget), description).validate(n)


def _labels(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)


def _check_fraction(fraction: float) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise TypeError(f"fraction must be a number in (0, 1), e.g. 0.1, got {fraction!r} ({type(fraction).__name__})")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")


def _class_index(cls: str | int, classes: Sequence[str]) -> int:
    if isinstance(cls, str) and cls in classes:
        return list(classes).index(cls)
    if isinstance(cls, str) and not cls.isdigit():
        raise ValueError(f"unknown class {cls!r}; known classes: {list(classes)}")
    if isinstance(cls, bool) or not isinstance(cls, (str, int, np.integer)):
        raise TypeError(f"a class is a name or an integer index, got {cls!r} ({type(cls).__name__}); "
                        f"known classes: {list(classes)}")
    c = int(cls)
    if not 0 <= c < len(classes):
        raise ValueError(f"class index {c} out of range [0, {len(classes)})")
    return c


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"index file {path} does not exist")
    arr = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, ndmin=1)
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{path} holds non-integer indices")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{path} must hold integer indices, got dtype {arr.dtype}")
    return arr.ravel()
