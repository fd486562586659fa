"""Datasets as uint8 image tensors (N, C, H, W) with integer labels, decoded once and cached.

``load_dataset(name)`` knows:

==================  ==========================================================================
``cifar10``         torchvision's pickled batches, or an image-folder tree ``cifar10-jpeg/``
                    (or its ``cifar10-jpeg.tar.xz`` archive) under the data root; downloads
                    the original batches when online
``cifar100``        the pickled CIFAR-100 files (downloads when online)
``cifar20``         CIFAR-100 with its 20 standard coarse labels; fine labels kept
``cifar10-coarse``  CIFAR-10 as 5 superclasses of similar pairs (for sub-class forgetting here)
``tinyimagenet``    TinyImageNet-200 in its official folder layout (downloads when online);
                    the official validation split serves as the test set
``digits``          scikit-learn's 8x8 digits (offline smoke data), fixed stratified 80/20 split
``digits-coarse``   digits as 5 superclasses of pairs
a directory path    any image-folder tree ``train/<class>/*`` + ``test/<class>/*`` (or ``val/``)
==================  ==========================================================================

All files live under :func:`nmu.storage.data_root` (``$NMU_DATA``); decoded tensors are cached in
``<root>/cache/`` so later loads take a fraction of a second.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nmu.storage import data_root, load_tensors, save_tensors

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

# Superclasses used for sub-class forgetting on data that has no coarse labels of its own.
COARSE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "cifar10": (("airplane", "ship"), ("automobile", "truck"), ("bird", "frog"),
                ("cat", "dog"), ("deer", "horse")),
    "digits": (("0", "6"), ("1", "7"), ("2", "5"), ("3", "8"), ("4", "9")),
}

# Per-channel mean/std of the training images (PAPER.md section 3).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2764, 0.2689, 0.2816)),
}

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
CACHE_FORMAT = "nmu-dataset-v1"


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable; the message says where to put it."""


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


def load_dataset(name: str, root: str | Path | None = None, *, download: bool = True) -> Dataset:
    """Load a dataset by name (see the module docstring) or from an image-folder directory."""
    root = Path(root) if root is not None else data_root()
    if Path(name).expanduser().is_dir():
        return load_image_folder(Path(name).expanduser(), root=root)
    builders = {
        "cifar10": lambda: _cifar10(root, download),
        "cifar100": lambda: _cifar100(root, download, coarse=False),
        "cifar20": lambda: _cifar100(root, download, coarse=True),
        "tinyimagenet": lambda: _tinyimagenet(root, download),
        "digits": _digits,
    }
    base = name.removesuffix("-coarse")
    if name.endswith("-coarse") and base in COARSE_GROUPS:
        return coarsen(load_dataset(base, root, download=download), COARSE_GROUPS[base])
    if name not in builders:
        known = sorted(builders) + [f"{b}-coarse" for b in COARSE_GROUPS]
        raise ValueError(f"unknown dataset {name!r}; use one of {known} or the path of an image-folder tree")
    return _cached(root / "cache" / f"{name}.pt", builders[name])


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

    Classes are the sorted sub-directory names of ``train/``; images are read as RGB; mean/std are
    computed from the training images unless given. The result is cached under the data root, keyed
    by the tree's path, file names and sizes, so edits to the tree are picked up.
    """
    path = Path(path).resolve()
    splits, classes = _folder_layout(path)
    files = {s: _list_images(d, classes) for s, d in splits.items()}
    fingerprint = hashlib.sha256(repr([(str(f), f.stat().st_size) for s in files.values() for f, _ in s])
                                 .encode()).hexdigest()[:16]
    name = name or path.name
    cache = (Path(root) if root is not None else data_root()) / "cache" / f"folder-{name}-{fingerprint}.pt"
    return _cached(cache, lambda: _folder_dataset(path, files, classes, name, normalization))


# ----------------------------------------------------------------------------------------- builders

def _cifar10(root: Path, download: bool) -> Dataset:
    mean, std = NORMALIZATION["cifar10"]
    batches = root / "cifar-10-batches-py"
    folder, archive = root / "cifar10-jpeg", root / "cifar10-jpeg.tar.xz"
    if not batches.is_dir() and not folder.is_dir() and archive.is_file():
        _extract(archive, root)
    if not batches.is_dir() and folder.is_dir():
        splits, classes = _folder_layout(folder)
        if classes != CIFAR10_CLASSES:
            raise ValueError(f"{folder} has classes {classes}, expected CIFAR-10's {CIFAR10_CLASSES}")
        files = {s: _list_images(d, classes) for s, d in splits.items()}
        return _folder_dataset(folder, files, classes, "cifar10", (mean, std))
    if not batches.is_dir():
        _download(root, download, "CIFAR-10", lambda: _torchvision_download("CIFAR10", root),
                  f"  - the original batches: {batches}/data_batch_1..5, test_batch, batches.meta\n"
                  f"    (unpack {CIFAR10_URL} into {root}), or\n"
                  f"  - an image-folder tree {folder}/train/<class>/*.jpg + {folder}/test/<class>/*.jpg,\n"
                  f"    or its archive {archive} (e.g. `make data` unpacks ../shared/data/cifar10-jpeg.tar.xz)")
    train = [_unpickle(batches / f"data_batch_{i}") for i in range(1, 6)]
    test = _unpickle(batches / "test_batch")
    classes = tuple(_unpickle(batches / "batches.meta")["label_names"])
    return Dataset("cifar10",
                   _pixels(np.concatenate([b["data"] for b in train])),
                   torch.tensor(np.concatenate([b["labels"] for b in train]), dtype=torch.long),
                   _pixels(test["data"]), torch.tensor(test["labels"], dtype=torch.long),
                   classes=classes, mean=mean, std=std, source=f"pickled batches {batches}")


def _cifar100(root: Path, download: bool, coarse: bool) -> Dataset:
    base = root / "cifar-100-python"
    if not base.is_dir():
        _download(root, download, "CIFAR-100", lambda: _torchvision_download("CIFAR100", root),
                  f"  - {base}/train, {base}/test and {base}/meta "
                  "(unpack https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz there)")
    train, test, meta = (_unpickle(base / f) for f in ("train", "test", "meta"))
    fine_classes = tuple(meta["fine_label_names"])
    mean, std = NORMALIZATION["cifar100"]
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


def _tinyimagenet(root: Path, download: bool) -> Dataset:
    base = root / "tiny-imagenet-200"
    if not base.is_dir():
        def fetch() -> None:
            from torchvision.datasets.utils import download_and_extract_archive
            download_and_extract_archive(TINY_URL, str(root), md5=TINY_MD5)
        _download(root, download, "TinyImageNet-200", fetch,
                  f"  - the official tree {base}/train/<wnid>/images/*.JPEG, {base}/val/images/*.JPEG\n"
                  f"    and {base}/val/val_annotations.txt (unzip {TINY_URL} into {root})")
    wnids = sorted((base / "train").iterdir())
    classes_wnid = tuple(p.name for p in wnids if p.is_dir())
    index = {w: i for i, w in enumerate(classes_wnid)}
    train = [(f, index[w]) for w in classes_wnid
             for f in sorted((base / "train" / w / "images").iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    annotations = (base / "val" / "val_annotations.txt").read_text().splitlines()
    val_label = dict(line.split("\t")[:2] for line in annotations if line.strip())
    unknown = sorted(set(val_label.values()) - set(index))
    if unknown:
        raise ValueError(f"val_annotations.txt names classes missing from train/: {unknown[:5]}")
    val = [(base / "val" / "images" / f, index[w]) for f, w in sorted(val_label.items())]
    words = base / "words.txt"
    names = dict(line.split("\t", 1) for line in words.read_text().splitlines() if "\t" in line) \
        if words.is_file() else {}
    classes = tuple(names.get(w, w).split(",")[0].strip() for w in classes_wnid)
    mean, std = NORMALIZATION["tinyimagenet"]
    return Dataset("tinyimagenet", *_decode(train), *_decode(val), classes=classes, mean=mean, std=std,
                   source=f"folder {base}")


def _digits() -> Dataset:
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


# ------------------------------------------------------------------------------------------ helpers

def _cached(path: Path, build) -> Dataset:
    if path.is_file():
        try:
            stored = load_tensors(path)
            if stored.get("format") == CACHE_FORMAT:
                return Dataset.from_dict(stored["dataset"])
        except Exception:  # a truncated or foreign cache file: decode again and overwrite it
            pass
    ds = build()
    save_tensors({"format": CACHE_FORMAT, "dataset": ds.to_dict()}, path)
    return ds


def _download(root: Path, allowed: bool, what: str, fetch, where: str) -> None:
    message = f"{what} is not under the data root {root} (set $NMU_DATA to change it). Put there\n{where}"
    if not allowed:
        raise DataNotFoundError(message)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch()
    except Exception as err:  # offline, proxy, disk full: say what to do instead
        raise DataNotFoundError(f"{message}\nThe download failed: {err}") from err


def _torchvision_download(cls_name: str, root: Path) -> None:
    import torchvision.datasets

    getattr(torchvision.datasets, cls_name)(str(root), train=True, download=True)


def _extract(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataNotFoundError(f"missing {path}: the dataset directory is incomplete; delete it and re-download")
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _pixels(rows: np.ndarray) -> torch.Tensor:
    """CIFAR's (N, 3072) row layout -> uint8 (N, 3, 32, 32)."""
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.uint8).reshape(-1, 3, 32, 32))


def _folder_layout(path: Path) -> tuple[dict[str, Path], tuple[str, ...]]:
    splits = {"train": path / "train", "test": path / "test" if (path / "test").is_dir() else path / "val"}
    for d in splits.values():
        if not d.is_dir():
            raise DataNotFoundError(f"{path} is not an image-folder tree: missing {d}. Expected "
                                    f"{path}/train/<class>/<image> and {path}/test/<class>/<image>.")
    classes = tuple(sorted(p.name for p in splits["train"].iterdir() if p.is_dir()))
    if not classes:
        raise DataNotFoundError(f"{splits['train']} has no class sub-directories")
    return splits, classes


def _folder_dataset(path: Path, files: dict[str, list[tuple[Path, int]]], classes: tuple[str, ...], name: str,
                    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None) -> Dataset:
    (train_x, train_y), (test_x, test_y) = _decode(files["train"]), _decode(files["test"])
    mean, std = normalization or _stats(train_x)
    return Dataset(name, train_x, train_y, test_x, test_y, classes=classes, mean=mean, std=std,
                   source=f"image folder {path}")


def _list_images(split_dir: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    files = [(f, i) for i, c in enumerate(classes) if (split_dir / c).is_dir()
             for f in sorted((split_dir / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    extra = sorted({p.name for p in split_dir.iterdir() if p.is_dir()} - set(classes))
    if extra:
        raise ValueError(f"{split_dir} has classes {extra} that train/ lacks")
    if not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {split_dir}/<class>/")
    return files


def _decode(files: list[tuple[Path, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image
    from tqdm.auto import tqdm

    images = []
    for f, _ in tqdm(files, desc=f"decode {files[0][0].parent.parent.name}", unit="img", mininterval=1.0,
                     leave=False):
        with Image.open(f) as im:
            images.append(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1))
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images under {files[0][0].parent.parent} differ in size {sorted(shapes)[:3]}; "
                         "resize them to one size first")
    return torch.stack(images), torch.tensor([y for _, y in files], dtype=torch.long)


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double().div(255).transpose(0, 1).flatten(1)
    return tuple(round(v, 4) for v in x.mean(1).tolist()), tuple(round(v, 4) for v in x.std(1).tolist())
