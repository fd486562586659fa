"""Dataset loading from each real on-disk format, written small by the tests themselves."""

from __future__ import annotations

import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nmu import data as nmu_data
from nmu.data import CIFAR10_CLASSES, DataNotFoundError, coarsen, load_dataset, load_image_folder, subsample

RNG = np.random.default_rng(0)


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def _rows(n: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, 3072), dtype=np.uint8)


def _write_image(path: Path, size: int = 8, channels: int = 3, value: int | None = None) -> torch.Tensor:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = torch.from_numpy(RNG.integers(0, 256, (channels, size, size), dtype=np.uint8))
    if value is not None:
        img.fill_(value)
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path, quality=95)
    return img


def test_digits_is_a_fixed_stratified_split():
    ds = load_dataset("digits")
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape[1:] == (1, 8, 8)
    assert len(ds.train_labels) + len(ds.test_labels) == 1797
    assert ds.train_images.max() == 255 and ds.num_classes == 10
    share = ds.test_labels.bincount() / (ds.test_labels.bincount() + ds.train_labels.bincount())
    assert torch.allclose(share, torch.full((10,), 0.2), atol=0.01)
    again = load_dataset("digits")  # from the cache now
    assert torch.equal(again.train_images, ds.train_images) and again.classes == ds.classes


def test_coarse_digits_keep_fine_labels():
    ds = load_dataset("digits-coarse")
    assert ds.num_classes == 5 and ds.fine_classes == tuple(str(i) for i in range(10))
    groups = nmu_data.COARSE_GROUPS["digits"]
    for g, members in enumerate(groups):
        fine_in_group = ds.train_fine[ds.train_labels == g].unique().tolist()
        assert sorted(ds.fine_classes[i] for i in fine_in_group) == sorted(members)
    with pytest.raises(ValueError, match="partition"):
        coarsen(load_dataset("digits"), (("0", "1"), ("2", "cat")))


def test_subsample_is_class_balanced_seeded_and_shared_by_the_coarse_version():
    ds, coarse = load_dataset("digits"), load_dataset("digits-coarse")
    sub = subsample(ds, 20)
    assert sub.train_labels.bincount().tolist() == [20] * 10
    assert torch.equal(sub.test_images, ds.test_images) and "20 training images per class" in sub.source
    assert torch.equal(subsample(ds, 20).train_images, sub.train_images)
    assert not torch.equal(subsample(ds, 20, seed=1).train_images, sub.train_images)
    sub_coarse = subsample(coarse, 20)  # balanced by fine class: the very same images
    assert torch.equal(sub_coarse.train_images, sub.train_images) and torch.equal(sub_coarse.train_fine, sub.train_labels)
    assert len(subsample(ds, 10_000).train_labels) == len(ds.train_labels)  # a class with fewer keeps all
    with pytest.raises(ValueError, match="per_class"):
        subsample(ds, 0)


def test_cifar10_pickled_batches(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        _pickle(base / f"data_batch_{i}", {"data": _rows(4), "labels": [i % 10] * 4})
    test_rows = _rows(3)
    _pickle(base / "test_batch", {"data": test_rows, "labels": [7, 8, 9]})
    _pickle(base / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_labels.tolist() == [7, 8, 9]
    # CIFAR rows are channel planes of 32x32, row-major: pixel (c, y, x) = row[c*1024 + y*32 + x].
    assert ds.test_images[1, 2, 5, 7] == test_rows[1][2 * 1024 + 5 * 32 + 7]
    assert ds.classes == CIFAR10_CLASSES and ds.mean == nmu_data.NORMALIZATION["cifar10"][0]


def test_cifar100_and_cifar20(tmp_path):
    base = tmp_path / "cifar-100-python"
    fine_names = [f"fine{i}" for i in range(100)]
    coarse_names = [f"coarse{i}" for i in range(20)]
    _pickle(base / "train", {"data": _rows(6), "fine_labels": [0, 1, 2, 3, 4, 99],
                             "coarse_labels": [4, 1, 14, 8, 0, 19]})
    _pickle(base / "test", {"data": _rows(2), "fine_labels": [5, 6], "coarse_labels": [17, 3]})
    _pickle(base / "meta", {"fine_label_names": fine_names, "coarse_label_names": coarse_names})
    c100 = load_dataset("cifar100", tmp_path, download=False)
    assert c100.num_classes == 100 and c100.train_labels.tolist() == [0, 1, 2, 3, 4, 99]
    c20 = load_dataset("cifar20", tmp_path, download=False)
    assert c20.num_classes == 20 and c20.classes[0] == "coarse0"
    assert c20.train_labels.tolist() == [4, 1, 14, 8, 0, 19] and c20.train_fine.tolist() == c100.train_labels.tolist()
    assert torch.equal(c20.train_images, c100.train_images)


def test_tinyimagenet_official_layout(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]
    (base).mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tsalamander\nn03\ttabby cat\n")
    for w in wnids:
        for j in range(2):
            _write_image(base / "train" / w / "images" / f"{w}_{j}.JPEG")
    ann = []
    for j, w in enumerate(["n03", "n01", "n02", "n03"]):
        _write_image(base / "val" / "images" / f"val_{j}.JPEG")
        ann.append(f"val_{j}.JPEG\t{w}\t0\t0\t8\t8")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    ds = load_dataset("tinyimagenet", tmp_path, download=False)
    assert ds.classes == ("goldfish", "salamander", "tabby cat")  # sorted wnids n01, n02, n03
    assert ds.train_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test_labels.tolist() == [2, 0, 1, 2] and ds.test_images.shape == (4, 3, 8, 8)


def test_image_folder_tree_and_its_cache(tmp_path):
    tree = tmp_path / "mydata"
    originals = {}
    for split in ("train", "val"):
        for c, cls in enumerate(["zebra", "apple"]):
            for j in range(3):
                originals[(split, cls, j)] = _write_image(tree / split / cls / f"{j}.png", value=10 * c + j)
    ds = load_dataset(str(tree))
    assert ds.classes == ("apple", "zebra") and ds.train_images.shape == (6, 3, 8, 8)
    assert ds.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(ds.train_images[0], originals[("train", "apple", 0)])  # PNG is lossless
    _write_image(tree / "train" / "zebra" / "3.png")
    assert len(load_dataset(str(tree)).train_labels) == 7  # the cache notices a new file


def test_image_folder_errors(tmp_path):
    _write_image(tmp_path / "a" / "train" / "x" / "0.png")
    with pytest.raises(DataNotFoundError, match="test"):
        load_image_folder(tmp_path / "a")
    _write_image(tmp_path / "b" / "train" / "x" / "0.png", size=8)
    _write_image(tmp_path / "b" / "train" / "x" / "1.png", size=9)
    _write_image(tmp_path / "b" / "test" / "x" / "0.png")
    with pytest.raises(ValueError, match="differ in size"):
        load_image_folder(tmp_path / "b")


def test_cifar10_from_an_image_folder_archive(tmp_path):
    src = tmp_path / "src" / "cifar10-jpeg"
    for split in ("train", "test"):
        for cls in CIFAR10_CLASSES:
            _write_image(src / split / cls / "0000.jpg", size=32)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar10-jpeg.tar.xz", "w:xz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    ds = load_dataset("cifar10", root, download=False)
    assert ds.classes == CIFAR10_CLASSES and ds.train_labels.tolist() == list(range(10))
    assert (root / "cache" / "cifar10.pt").is_file()


def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "cifar-100-python")):
        load_dataset("cifar100", tmp_path, download=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(nmu_data, "_torchvision_download", offline)
    with pytest.raises(DataNotFoundError, match="download failed.*no network"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist-typo", tmp_path)


def test_corrupt_cache_is_rebuilt(tmp_path):
    ds = load_dataset("digits", tmp_path)
    (tmp_path / "cache" / "digits.pt").write_bytes(b"not a torch file")
    assert torch.equal(load_dataset("digits", tmp_path).train_labels, ds.train_labels)


@pytest.mark.slow
def test_real_cifar10_archive(tmp_path, shared_cifar10):
    (tmp_path / "cifar10-jpeg.tar.xz").symlink_to(shared_cifar10)
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert ds.train_labels.bincount().tolist() == [5000] * 10 and ds.classes == CIFAR10_CLASSES
    coarse = load_dataset("cifar10-coarse", tmp_path, download=False)
    assert coarse.num_classes == 5 and coarse.train_labels.bincount().tolist() == [10000] * 5
