"""Datasets as uint8 image tensors (N, C, H, W) with integer labels, decoded once and cached.

``load_dataset(name)`` knows the data sets of :data:`DATASETS`, the one place a new one is added (sources
in the order they are looked for under the data root):

==================  ==========================================================================
``cifar10``         the pickled batches ``cifar-10-batches-py/``; else the JPEG tree
                    ``cifar10-jpeg/{train,test}/<class>/*.jpg`` or its ``cifar10-jpeg.tar.xz``;
                    else ``cifar-10-python.tar.gz``, downloaded when online
``cifar100``        the pickled files ``cifar-100-python/``; else the JPEG tree
                    ``cifar100-jpeg/{train,test}/<fine_class>/*.jpg`` + ``classes.csv`` or its
                    ``cifar100-jpeg.tar.xz``; else ``cifar-100-python.tar.gz`` (downloaded online).
                    Fine labels in the official order (alphabetical: rocket = 69)
``cifar20``         CIFAR-100 with its 20 standard coarse labels (rocket -> 19, ``vehicles_2``);
                    the fine labels are kept in ``train_fine``/``test_fine``/``fine_classes``
``cifar10-coarse``  CIFAR-10 as 5 superclasses of similar pairs (for sub-class forgetting here)
``tinyimagenet``    TinyImageNet-200 in its official layout ``tiny-imagenet-200/`` (200 sorted
                    wnids, 500 train images each; val/ with val_annotations.txt is the test set),
                    or its ``tiny-imagenet-200.tar.xz`` / ``tiny-imagenet-200.zip`` (downloaded
                    online); greyscale images become RGB
``digits``          scikit-learn's 8x8 digits (offline smoke data), fixed stratified 80/20 split
``digits-coarse``   digits as 5 superclasses of pairs
a directory path    any image-folder tree ``train/<class>/*`` + ``test/<class>/*`` (or ``val/``);
                    a name is a path when it contains a path separator, starts with ``.``,
                    ``~`` or ``/``, or is no known name and an existing directory
==================  ==========================================================================

All files live under :func:`nmu.storage.data_root` (``$NMU_DATA``). Finding, downloading and
safely unpacking them, and checking known trees against their official image counts, is
:mod:`nmu.archives`' job (also ``python -m nmu.archives unpack DIR``, i.e. ``make data``); this
module decodes what it finds. A missing data set raises :class:`DataNotFoundError` saying which
files to put where, an incomplete one :class:`IncompleteDataError` naming the folder to delete.

Decoded tensors are cached in ``<root>/cache/<name>.pt`` (later loads take about a second), keyed
by the source's content (the file listing with sizes and modification times), so the cache is
rebuilt when its source files change and is not used once they are gone.
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickle
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nmu.archives import (IMAGE_SUFFIXES, PUBLISHED_MD5, DataNotFoundError, IncompleteDataError, check_tree,
                          describe, fix_hint, locate, offline, scan_tree)
from nmu.storage import data_root, load_tensors, progress_bar, save_tensors

# The 20 CIFAR-100 superclasses in the order of the official ``meta`` file's coarse_label_names.
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2")

# Superclasses used for sub-class forgetting on data that has no coarse labels of its own.
COARSE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "cifar10": (("airplane", "ship"), ("automobile", "truck"), ("bird", "frog"),
                ("cat", "dog"), ("deer", "horse")),
    "digits": (("0", "6"), ("1", "7"), ("2", "5"), ("3", "8"), ("4", "9")),
}

CACHE_FORMAT = "nmu-dataset-v2"


@dataclass(frozen=True)
class Dataset:
    """Train and test images (uint8, N x C x H x W, values 0..255) with labels and class names.

    For coarse-label datasets (``cifar20``, ``*-coarse``) ``labels`` are the coarse classes the model
    predicts and ``*_fine`` / ``fine_classes`` keep the original fine classes.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_fine: torch.Tensor | None = None
    test_fine: torch.Tensor | None = None
    fine_classes: tuple[str, ...] | None = None
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_images.shape[1:]
        return int(c), int(h), int(w)

    def __repr__(self) -> str:
        fine = f", {len(self.fine_classes)} fine classes" if self.fine_classes else ""
        return (f"Dataset({self.name!r}: {len(self.train_labels)} train / {len(self.test_labels)} test, "
                f"{self.num_classes} classes{fine}, images {tuple(self.image_shape)}, from {self.source})")

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        d = dict(d)
        for key in ("classes", "mean", "std", "fine_classes"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def load_dataset(name: str | os.PathLike, root: str | Path | None = None, *, download: bool = True) -> Dataset:
    """Load a dataset by name (see the module docstring) or from an image-folder directory.

    With ``download=False`` or ``$NMU_OFFLINE=1`` nothing is downloaded; a missing data set raises
    :class:`DataNotFoundError` saying which files to put where.
    """
    root = Path(root) if root is not None else data_root()
    if _is_path(name):
        return load_image_folder(Path(name).expanduser(), root=root)
    base = name.removesuffix("-coarse")
    if name.endswith("-coarse") and base in COARSE_GROUPS:
        return coarsen(load_dataset(base, root, download=download), COARSE_GROUPS[base])
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {sorted(known_names())} or the path of an "
                         "image-folder tree (e.g. ./mydata)")
    known = DATASETS[name]
    path = None
    if known.folders:
        online = (known.url, PUBLISHED_MD5[known.archive], known.archive, known.folders[0][0]) if known.url else None
        path = locate(root, list(known.folders), online, download and not offline(), known.title,
                      known.where.format(root=root))
    key, build = known.loader(root, path)
    return _cached(root / "cache" / f"{name}.pt", key, build)


def known_names() -> set[str]:
    """Every dataset name :func:`load_dataset` knows (:data:`DATASETS` and the ``-coarse`` variants)."""
    return set(DATASETS) | {f"{b}-coarse" for b in COARSE_GROUPS}


def base_name(name: str) -> str:
    """The data set a variant is made from, for per-dataset lookups (architectures, subsets):
    ``cifar10-coarse`` -> ``cifar10``, ``cifar20`` (CIFAR-100 with coarse labels) -> ``cifar100``."""
    name = name.removesuffix("-coarse")
    return DATASETS[name].base or name if name in DATASETS else name


def subsample(ds: Dataset, per_class: int, seed: int = 0) -> Dataset:
    """The first ``per_class`` training images of each class in a seeded random order (all of a
    class if it has fewer); the test set is kept whole. Classes are counted by fine label where the
    dataset has one, so ``cifar10`` and ``cifar10-coarse`` keep exactly the same images."""
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    groups = ds.train_fine if ds.train_fine is not None else ds.train_labels
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed))
    keep = torch.cat([order[groups[order] == c][:per_class] for c in torch.unique(groups)]).sort().values
    fine = ds.train_fine[keep] if ds.train_fine is not None else None
    return replace(ds, train_images=ds.train_images[keep], train_labels=ds.train_labels[keep], train_fine=fine,
                   source=f"{ds.source}, {per_class} training images per class (seed {seed})")


def coarsen(ds: Dataset, groups: tuple[tuple[str, ...], ...]) -> Dataset:
    """Relabel ``ds`` with superclasses given as groups of class names; fine labels are kept."""
    lookup = {c: i for i, c in enumerate(ds.classes)}
    missing = [c for g in groups for c in g if c not in lookup]
    flat = [c for g in groups for c in g]
    if missing or sorted(flat) != sorted(ds.classes):
        raise ValueError(f"coarse groups must partition the classes {ds.classes}; unknown or missing: "
                         f"{missing or sorted(set(ds.classes) - set(flat))}")
    to_coarse = torch.empty(ds.num_classes, dtype=torch.long)
    for gi, group in enumerate(groups):
        for c in group:
            to_coarse[lookup[c]] = gi
    return replace(ds, name=f"{ds.name}-coarse", classes=tuple("+".join(g) for g in groups),
                   train_labels=to_coarse[ds.train_labels], test_labels=to_coarse[ds.test_labels],
                   train_fine=ds.train_labels, test_fine=ds.test_labels, fine_classes=ds.classes)


def load_image_folder(path: str | Path, name: str | None = None,
                      normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                      root: str | Path | None = None) -> Dataset:
    """Decode a ``train/<class>/*`` + ``test/<class>/*`` (or ``val/``) tree of same-sized images.

    Classes are the sorted sub-directory names of ``train/``; every class needs at least one image
    in both splits (an empty class folder is an error), and all images must have one size. Images
    are read as RGB (16-bit greyscale scaled to 8 bits); mean/std are computed from the training
    images unless given. The result is cached under the data root, keyed by the tree's file names,
    sizes and modification times (symlinked folders included), so edits to the tree are picked up.
    """
    path = Path(path).expanduser().resolve()
    splits, classes = _folder_layout(path)
    files = {s: _list_images(d, classes) for s, d in splits.items()}
    name = name or path.name
    key = _digest(["folder", str(path), normalization, scan_tree(path)])
    cache = (Path(root) if root is not None else data_root()) / "cache" / \
        f"folder-{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:12]}.pt"
    return _cached(cache, key, lambda: _folder_dataset(path, files, classes, name, normalization))


# ----------------------------------------------------------------------------------------- builders

def _cifar10(root: Path, path: Path):
    mean, std = DATASETS["cifar10"].normalization
    key = _digest(["cifar10", path.name, check_tree(path)])
    if path.name == "cifar10-jpeg":
        def build() -> Dataset:
            splits, classes = _folder_layout(path)
            files = {s: _list_images(d, classes) for s, d in splits.items()}
            return _folder_dataset(path, files, classes, "cifar10", (mean, std), kind="JPEG tree")
        return key, build

    def build_pickles() -> Dataset:
        train = [_unpickle(path / f"data_batch_{i}", ("data", "labels")) for i in range(1, 6)]
        test = _unpickle(path / "test_batch", ("data", "labels"))
        classes = tuple(_unpickle(path / "batches.meta", ("label_names",))["label_names"])
        return Dataset("cifar10",
                       _pixels(np.concatenate([b["data"] for b in train])),
                       torch.tensor(np.concatenate([b["labels"] for b in train]), dtype=torch.long),
                       _pixels(test["data"]), torch.tensor(test["labels"], dtype=torch.long),
                       classes=classes, mean=mean, std=std, source=f"pickled batches {path}")
    return key, build_pickles


def _cifar100(root: Path, path: Path, coarse: bool = False):
    mean, std = DATASETS["cifar100"].normalization
    key = _digest(["cifar100", path.name, check_tree(path)])
    if path.name == "cifar100-jpeg":
        fine_build = lambda: _cifar100_jpeg(path, mean, std)  # noqa: E731
        if not coarse:
            return key, fine_build
        return key, lambda: _cifar20_from_csv(_cached(root / "cache" / "cifar100.pt", key, fine_build), path)
    return key, lambda: _cifar100_pickles(path, mean, std, coarse)


def _cifar100_pickles(base: Path, mean, std, coarse: bool) -> Dataset:
    split_keys = ("data", "fine_labels", "coarse_labels")
    train, test = _unpickle(base / "train", split_keys), _unpickle(base / "test", split_keys)
    meta = _unpickle(base / "meta", ("fine_label_names", "coarse_label_names"))
    fine_classes = tuple(meta["fine_label_names"])
    labels = {s: {k: torch.tensor(d[k], dtype=torch.long) for k in ("fine_labels", "coarse_labels")}
              for s, d in (("train", train), ("test", test))}
    if not coarse:
        return Dataset("cifar100", _pixels(train["data"]), labels["train"]["fine_labels"],
                       _pixels(test["data"]), labels["test"]["fine_labels"], classes=fine_classes,
                       mean=mean, std=std, source=f"pickled files {base}")
    return Dataset("cifar20", _pixels(train["data"]), labels["train"]["coarse_labels"],
                   _pixels(test["data"]), labels["test"]["coarse_labels"],
                   classes=tuple(meta["coarse_label_names"]), mean=mean, std=std,
                   train_fine=labels["train"]["fine_labels"], test_fine=labels["test"]["fine_labels"],
                   fine_classes=fine_classes, source=f"pickled files {base}")


def _read_classes_csv(path: Path) -> tuple[tuple[str, ...], list[int], tuple[str, ...]]:
    """``classes.csv`` of the CIFAR-100 JPEG tree -> (fine names by fine label, coarse label of each
    fine label, coarse names by coarse label), checked for consistency."""
    csv_path = path / "classes.csv"
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"fine_label", "fine_name", "coarse_label", "coarse_name"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{csv_path} must have the columns {sorted(need)}")
    rows.sort(key=lambda r: int(r["fine_label"]))
    if [int(r["fine_label"]) for r in rows] != list(range(len(rows))):
        raise ValueError(f"{csv_path}: fine_label must run 0..{len(rows) - 1}")
    coarse_names: dict[int, str] = {}
    for r in rows:
        if coarse_names.setdefault(int(r["coarse_label"]), r["coarse_name"]) != r["coarse_name"]:
            raise ValueError(f"{csv_path}: coarse_label {r['coarse_label']} has two names")
    if sorted(coarse_names) != list(range(len(coarse_names))):
        raise ValueError(f"{csv_path}: coarse_label must run 0..{len(coarse_names) - 1}")
    return (tuple(r["fine_name"] for r in rows), [int(r["coarse_label"]) for r in rows],
            tuple(coarse_names[i] for i in range(len(coarse_names))))


def _cifar100_jpeg(path: Path, mean, std) -> Dataset:
    splits, classes = _folder_layout(path)
    fine_names, _, _ = _read_classes_csv(path)
    if classes != fine_names:
        raise ValueError(f"the class folders of {path}/train (alphabetical) do not match the fine_label order of "
                         f"{path}/classes.csv: {classes[:3]}... vs {fine_names[:3]}...")
    files = {s: _list_images(d, classes) for s, d in splits.items()}
    return _folder_dataset(path, files, classes, "cifar100", (mean, std), kind="JPEG tree")


def _cifar20_from_csv(fine: Dataset, path: Path) -> Dataset:
    fine_names, coarse_of, coarse_names = _read_classes_csv(path)
    if fine_names != fine.classes:
        raise ValueError(f"{path}/classes.csv does not list the fine classes of the decoded data")
    to_coarse = torch.tensor(coarse_of, dtype=torch.long)
    return replace(fine, name="cifar20", classes=coarse_names,
                   train_labels=to_coarse[fine.train_labels], test_labels=to_coarse[fine.test_labels],
                   train_fine=fine.train_labels, test_fine=fine.test_labels, fine_classes=fine.classes)


def _tinyimagenet(root: Path, path: Path):
    listing = check_tree(path)
    return _digest(["tinyimagenet", [item for item in listing if not item[0].startswith("test/")]]), \
        lambda: _tinyimagenet_build(path)


def _tinyimagenet_build(base: Path) -> Dataset:
    classes_wnid = tuple(sorted(p.name for p in (base / "train").iterdir() if p.is_dir()))
    index = {w: i for i, w in enumerate(classes_wnid)}
    train = [(f, index[w]) for w in classes_wnid for f in _images_in(base / "train" / w / "images")]
    annotations = (base / "val" / "val_annotations.txt").read_text().splitlines()
    val_label = dict(line.split("\t")[:2] for line in annotations if line.strip())
    unknown = sorted(set(val_label.values()) - set(index))
    if unknown:
        raise ValueError(f"{base}/val/val_annotations.txt names classes missing from train/: {unknown[:5]}")
    val = [(base / "val" / "images" / f, index[w]) for f, w in sorted(val_label.items())]
    missing = [f for f, _ in val if not f.is_file()]
    if missing:
        raise IncompleteDataError(f"{base}/val/val_annotations.txt lists {len(missing)} images that are missing, "
                                  f"e.g. {missing[0]}. {fix_hint(base, None)}")
    words = base / "words.txt"
    names = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line) \
        if words.is_file() else {}
    classes = tuple(names.get(w, w).split(",")[0].strip() for w in classes_wnid)
    mean, std = DATASETS["tinyimagenet"].normalization
    (train_x, train_y), (val_x, val_y) = _decode(train, base / "train"), _decode(val, base / "val")
    _same_size(train_x, test_x=val_x, train_file=train[0][0], test_file=val[0][0])
    return Dataset("tinyimagenet", train_x, train_y, val_x, val_y, classes=classes, mean=mean, std=std,
                   source=f"official tree {base}")


def _digits(root: Path, path: None):
    def build() -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.tensor(np.round(bunch.images * (255.0 / 16.0)), dtype=torch.uint8).unsqueeze(1)
        labels = torch.tensor(bunch.target, dtype=torch.long)
        rng = np.random.default_rng(0)
        test_idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(bunch.target == c))[
            : round(0.2 * (bunch.target == c).sum())] for c in range(10)]))
        is_test = torch.zeros(len(labels), dtype=torch.bool)
        is_test[test_idx] = True
        mean, std = _stats(images[~is_test])
        return Dataset("digits", images[~is_test], labels[~is_test], images[is_test], labels[is_test],
                       classes=tuple(str(i) for i in range(10)), mean=mean, std=std,
                       source="scikit-learn load_digits")

    import sklearn

    return _digest(["digits", sklearn.__version__]), build


@dataclass(frozen=True)
class Known:
    """A named data set: what it is and where its files come from. ``folders``: the folders looked for
    under the data root, in order, each with the archives that unpack into it; ``url`` / ``archive``:
    the original download (checked against :data:`nmu.archives.PUBLISHED_MD5`); ``where``: the files
    to put where, said when none is found (``{root}``: the data root); ``loader(root, folder found)
    -> (cache key, build)``; ``base``: the data set it is a variant of."""

    title: str
    classes: int
    train_per_class: int
    shape: tuple[int, int, int]
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None
    loader: Callable[[Path, Path | None], tuple[str, Callable[[], Dataset]]]
    folders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    url: str | None = None
    archive: str | None = None
    where: str = ""
    base: str | None = None


_CIFAR100 = dict(title="CIFAR-100", classes=100, train_per_class=500, shape=(3, 32, 32),
                 normalization=((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
                 folders=(("cifar-100-python", ("cifar-100-python.tar.gz",)),
                          ("cifar100-jpeg", ("cifar100-jpeg.tar.xz",))),
                 url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", archive="cifar-100-python.tar.gz",
                 where="  - the JPEG tree {root}/cifar100-jpeg/train/<fine_class>/*.jpg + test/<fine_class>/*.jpg "
                       "(500 + 100 per class)\n    with classes.csv, or its archive {root}/cifar100-jpeg.tar.xz "
                       "(`make data` unpacks ../shared/data/cifar100-jpeg.tar.xz into $NMU_DATA), or\n"
                       "  - the pickled files {root}/cifar-100-python/train, {root}/cifar-100-python/test "
                       "and {root}/cifar-100-python/meta,\n"
                       "    or their archive {root}/cifar-100-python.tar.gz "
                       "(https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz)")
DATASETS: dict[str, Known] = {
    "cifar10": Known(
        "CIFAR-10", 10, 5000, (3, 32, 32), ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), _cifar10,
        folders=(("cifar-10-batches-py", ("cifar-10-python.tar.gz",)), ("cifar10-jpeg", ("cifar10-jpeg.tar.xz",))),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", archive="cifar-10-python.tar.gz",
        where="  - the JPEG tree {root}/cifar10-jpeg/train/<class>/*.jpg + test/<class>/*.jpg (5,000 + 1,000 per "
              "class),\n    or its archive {root}/cifar10-jpeg.tar.xz (`make data` unpacks "
              "../shared/data/cifar10-jpeg.tar.xz into $NMU_DATA), or\n"
              "  - the original batches {root}/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta,\n"
              "    or their archive {root}/cifar-10-python.tar.gz "
              "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)"),
    "cifar100": Known(**_CIFAR100, loader=_cifar100),
    "cifar20": Known(**_CIFAR100 | {"title": "CIFAR-100 (20 coarse classes)"},
                     loader=lambda root, path: _cifar100(root, path, coarse=True), base="cifar100"),
    "tinyimagenet": Known(
        "TinyImageNet-200", 200, 500, (3, 64, 64), ((0.4802, 0.4481, 0.3975), (0.2764, 0.2689, 0.2816)),
        _tinyimagenet, folders=(("tiny-imagenet-200", ("tiny-imagenet-200.tar.xz", "tiny-imagenet-200.zip")),),
        url="http://cs231n.stanford.edu/tiny-imagenet-200.zip", archive="tiny-imagenet-200.zip",
        where="  - the official tree {root}/tiny-imagenet-200/wnids.txt, words.txt, train/<wnid>/images/*.JPEG\n"
              "    (500 per class), val/images/*.JPEG (10,000) and val/val_annotations.txt, or\n"
              "  - its archive {root}/tiny-imagenet-200.tar.xz (`make data` unpacks "
              "../shared/data/tiny-imagenet-200.tar.xz into $NMU_DATA),\n"
              "    or the official zip {root}/tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip)"),
    "digits": Known("digits (scikit-learn, 8x8)", 10, 144, (1, 8, 8), None, _digits),
}
"""Every named data set, the one place a new one is added (its loader above): normalisation from
docs/method.md, "Protocol" (``None``: computed from the training images). ``train_per_class`` is the
official split's (digits: about, 1,438 training images in all)."""


# ------------------------------------------------------------------------------------------ helpers

def _digest(obj) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()


def _is_path(name) -> bool:
    """Known names win; a string is a path when it looks like one or names an existing directory."""
    if isinstance(name, os.PathLike):
        return True
    if any(sep and sep in name for sep in ("/", os.sep, os.altsep)) or name.startswith((".", "~")):
        return True
    return bool(name) and name not in known_names() and Path(name).is_dir()


def _cached(path: Path, key: str, build) -> Dataset:
    if path.is_file():
        try:
            stored = load_tensors(path)
            if stored.get("format") == CACHE_FORMAT and stored.get("key") == key:
                return Dataset.from_dict(stored["dataset"])
        except Exception:  # a truncated or foreign cache file: decode again and overwrite it
            pass
    ds = build()
    save_tensors({"format": CACHE_FORMAT, "key": key, "dataset": ds.to_dict()}, path)
    return ds


class _ArraysOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle can name any function to call,
    and the official CIFAR batches name nothing but numpy's array reconstruction."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to call {module}.{name}, which a CIFAR batch never does "
                                         "(nothing was run)")
        return super().find_class(module, name)


def _unpickle(path: Path, keys: tuple[str, ...]) -> dict:
    """The dict pickled in a CIFAR batch file, which must hold ``keys``."""
    if not path.is_file():
        raise IncompleteDataError(f"missing {path}: the dataset folder {path.parent} is incomplete; delete it "
                                  "and load again (nmu re-downloads or re-extracts it)")
    try:
        with open(path, "rb") as fh:
            batch = _ArraysOnly(fh, encoding="latin1").load()
    except (EOFError, pickle.UnpicklingError, ValueError) as err:
        raise IncompleteDataError(f"cannot read {path} ({err}): the file is truncated, damaged or not a CIFAR batch; "
                                  f"delete the folder {path.parent} and load again") from err
    missing = [k for k in keys if not isinstance(batch, dict) or k not in batch]
    if missing:
        raise IncompleteDataError(f"{path} is not a CIFAR batch: it lacks {missing}; delete the folder {path.parent} "
                                  "and load again")
    return batch


def _pixels(rows: np.ndarray) -> torch.Tensor:
    """CIFAR's (N, 3072) row layout -> uint8 (N, 3, 32, 32)."""
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.uint8).reshape(-1, 3, 32, 32))


def _folder_layout(path: Path) -> tuple[dict[str, Path], tuple[str, ...]]:
    splits = {"train": path / "train", "test": path / "test" if (path / "test").is_dir() else path / "val"}
    for d in splits.values():
        if not d.is_dir():
            alt = " (or test/)" if d.name == "val" else ""
            raise DataNotFoundError(f"{path} is not an image-folder tree: missing {d}{alt}. Expected "
                                    f"{path}/train/<class>/<image> and {path}/test/<class>/<image>.")
    classes = tuple(sorted(p.name for p in splits["train"].iterdir() if p.is_dir()))
    if not classes:
        raise DataNotFoundError(f"{splits['train']} has no class sub-directories")
    return splits, classes


def _folder_dataset(path: Path, files: dict[str, list[tuple[Path, int]]], classes: tuple[str, ...], name: str,
                    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None,
                    kind: str = "image folder") -> Dataset:
    _same_size(train_file=files["train"][0][0], test_file=files["test"][0][0])  # fail before decoding it all
    train_dir, test_dir = files["train"][0][0].parent.parent, files["test"][0][0].parent.parent
    (train_x, train_y), (test_x, test_y) = _decode(files["train"], train_dir), _decode(files["test"], test_dir)
    mean, std = normalization or _stats(train_x)
    return Dataset(name, train_x, train_y, test_x, test_y, classes=classes, mean=mean, std=std,
                   source=f"{kind} {path}")


def _same_size(train_x: torch.Tensor | None = None, test_x: torch.Tensor | None = None, *,
               train_file: Path, test_file: Path) -> None:
    """Train and test images must have one size: compares decoded tensors, or the two files' headers."""
    if train_x is not None and test_x is not None:
        a, b = tuple(train_x.shape[2:][::-1]), tuple(test_x.shape[2:][::-1])
    else:
        a, b = _image_size(train_file), _image_size(test_file)
    if a != b:
        raise ValueError(f"train and test images differ in size: train images are {a[0]}x{a[1]} (e.g. {train_file}), "
                         f"test images {b[0]}x{b[1]} (e.g. {test_file}); resize them to one size first")


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as err:  # noqa: BLE001 - PIL raises many kinds
        raise ValueError(f"cannot read the image {path} ({type(err).__name__}: {err}): replace or delete it") from err


def _list_images(split_dir: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    extra = sorted({p.name for p in split_dir.iterdir() if p.is_dir()} - set(classes))
    if extra:
        raise ValueError(f"{split_dir} has classes {extra} that train/ lacks")
    files, empty = [], []
    for i, c in enumerate(classes):
        found = _images_in(split_dir / c) if (split_dir / c).is_dir() else []
        if not found:
            empty.append(str(split_dir / c))
        files.extend((f, i) for f in found)
    if empty and not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {split_dir}/<class>/")
    if empty:
        raise ValueError(f"class folders without images ({', '.join(IMAGE_SUFFIXES)}): {', '.join(empty[:5])}"
                         f"{' ...' if len(empty) > 5 else ''}. Every class needs images in both train/ and "
                         "test/: add some, or remove the class from both splits")
    return files


def _images_in(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted; one that is not a regular file (a FIFO, a
    device, a folder, a broken link: reading it could block forever) is an error naming it."""
    found = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    for f in found:
        try:
            mode = f.stat().st_mode
        except OSError:
            raise ValueError(f"{f} is a broken link, not an image: remove it or fix the link") from None
        if not stat.S_ISREG(mode):
            raise ValueError(f"{f} is {describe(mode)}, not an image file: remove it from the data set")
    return found


def _read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as 8-bit RGB (H, W, 3); 16-bit greyscale keeps its top 8 bits."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode.startswith("I;16"):
                return np.repeat((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
            if mode not in ("I", "F"):
                return np.asarray(im.convert("RGB"))
    except Exception as err:  # noqa: BLE001 - truncated, not an image, decompression bomb, ...
        raise ValueError(f"cannot decode the image {path} ({type(err).__name__}: {err}): the file is truncated "
                         "or not an image; replace it (re-extract the data set) or delete it") from err
    raise ValueError(f"the image {path} has {'32-bit integer' if mode == 'I' else 'floating-point'} pixels (mode "
                     f"{mode!r}), which have no one 8-bit scale: convert the images to 8-bit (or 16-bit) first")


def _decode(files: list[tuple[Path, int]], where: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``files`` as RGB into one uint8 (N, 3, H, W) tensor; all must have the first one's size."""
    where = where or files[0][0].parent.parent
    first = _read_rgb(files[0][0])
    out = np.empty((len(files), 3) + first.shape[:2], dtype=np.uint8)
    for i, (f, _) in enumerate(progress_bar(iterable=files, desc=f"decode {where.name}", unit="img", mininterval=1.0,
                                            leave=False)):
        img = first if i == 0 else _read_rgb(f)
        if img.shape != first.shape:
            raise ValueError(f"images under {where} differ in size: {files[0][0]} is "
                             f"{first.shape[1]}x{first.shape[0]}, "
                             f"{f} is {img.shape[1]}x{img.shape[0]}; resize them to one size first")
        out[i] = img.transpose(2, 0, 1)
    return torch.from_numpy(out), torch.tensor([y for _, y in files], dtype=torch.long)


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double().div(255).transpose(0, 1).flatten(1)
    return tuple(round(v, 4) for v in x.mean(1).tolist()), tuple(round(v, 4) for v in x.std(1).tolist())


