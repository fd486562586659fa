"""Dataset loading from each real on-disk format, written small by the tests themselves (the real
archives are tested in test_real_data.py). Known image trees must hold their official image counts;
the ``official_counts`` fixture shrinks those to the tests' small trees."""

from __future__ import annotations

import csv
import io
import http.server
import os
import pickle
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nmu import archives as nmu_archives
from nmu import data as nmu_data
from nmu.archives import CIFAR10_CLASSES
from nmu.data import DataNotFoundError, coarsen, load_dataset, load_image_folder, subsample
from nmu.profiles import get_profile

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
    pixels = img.permute(1, 2, 0).numpy()
    Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(path, quality=95)
    return img


def _tar(src: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(src, arcname=src.name)
    return archive


def _cifar10_tree(base: Path, train: int, test: int, size: int = 32) -> None:
    for split, n in (("train", train), ("test", test)):
        for cls in CIFAR10_CLASSES:
            for j in range(n):
                _write_image(base / split / cls / f"{j:04d}.jpg", size=size)


# The 20 standard CIFAR-100 superclasses (in the official coarse label order) and their fine classes.
STANDARD_SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
COARSE_NAMES = list(STANDARD_SUPERCLASSES)
FINE_NAMES = sorted(f for members in STANDARD_SUPERCLASSES.values() for f in members)  # official fine order
COARSE_OF = {f: COARSE_NAMES.index(c) for c, members in STANDARD_SUPERCLASSES.items() for f in members}


def _cifar100_tree(base: Path, train: int = 1, test: int = 1) -> dict[tuple[str, str, int], torch.Tensor]:
    """The CIFAR-100 JPEG tree with classes.csv; returns the written images (flat grey levels that
    identify class and index and survive JPEG coding)."""
    written = {}
    for split, n in (("train", train), ("test", test)):
        for f, fine in enumerate(FINE_NAMES):
            for j in range(n):
                written[(split, fine, j)] = _write_image(base / split / fine / f"{fine}_s_{j:06d}.jpg", size=32,
                                                         value=2 * f + j)
    with open(base / "classes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fine_label", "fine_name", "coarse_label", "coarse_name"])
        for i, fine in enumerate(FINE_NAMES):
            w.writerow([i, fine, COARSE_OF[fine], COARSE_NAMES[COARSE_OF[fine]]])
    (base / "README.txt").write_text("test tree\n")
    return written


@pytest.fixture
def official_counts(monkeypatch):
    """``official_counts(folder, classes=.., train=.., test=..)`` sets the image counts nmu expects of
    that known tree for this test (nmu checks known trees against their official counts)."""
    table = dict(getattr(nmu_archives, "OFFICIAL_COUNTS", {}))
    monkeypatch.setattr(nmu_archives, "OFFICIAL_COUNTS", table, raising=False)

    def set_counts(folder: str, **counts: int) -> None:
        table[folder] = counts
    return set_counts


@pytest.fixture
def no_network(monkeypatch):
    """Name resolution for anything but the loopback interface fails; returns the hosts asked for."""
    asked = []
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        asked.append(host)
        if host not in ("127.0.0.1", "localhost"):
            raise socket.gaierror(f"test: no network for {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return asked


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
    assert ds.classes == CIFAR10_CLASSES and ds.mean == nmu_data.DATASETS["cifar10"].normalization[0]


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


def _tiny_tree(base: Path) -> None:
    """A 3-class TinyImageNet tree in the official layout: 2 train images per class, 4 val images,
    one train and one val image greyscale (mode L) as in the real set."""
    wnids = ["n02", "n01", "n03"]
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tsalamander\nn03\ttabby cat\n"
                                    "n04\tnot in this set\n")
    for w in wnids:
        for j in range(2):
            _write_image(base / "train" / w / "images" / f"{w}_{j}.JPEG", channels=1 if (w, j) == ("n01", 1) else 3)
        (base / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t0\t0\t8\t8\n")
    ann = []
    for j, w in enumerate(["n03", "n01", "n02", "n03"]):
        _write_image(base / "val" / "images" / f"val_{j}.JPEG", channels=1 if j == 2 else 3)
        ann.append(f"val_{j}.JPEG\t{w}\t0\t0\t8\t8")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")


@pytest.mark.parametrize("form", ["tree", "tar.xz archive"])
def test_tinyimagenet_official_layout(tmp_path, official_counts, form):
    official_counts("tiny-imagenet-200", classes=3, train=2, val=4)
    root = tmp_path / "root"
    if form == "tree":
        _tiny_tree(root / "tiny-imagenet-200")
    else:
        _tiny_tree(tmp_path / "src" / "tiny-imagenet-200")
        _tar(tmp_path / "src" / "tiny-imagenet-200", root / "tiny-imagenet-200.tar.xz")
    ds = load_dataset("tinyimagenet", root, download=False)
    assert ds.classes == ("goldfish", "salamander", "tabby cat")  # sorted wnids n01, n02, n03
    assert ds.train_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test_labels.tolist() == [2, 0, 1, 2] and ds.test_images.shape == (4, 3, 8, 8)
    assert ds.train_images.shape == (6, 3, 8, 8)  # the greyscale images became RGB: R = G = B
    assert torch.equal(ds.train_images[1, 0], ds.train_images[1, 1]) and torch.equal(ds.test_images[2, 0],
                                                                                      ds.test_images[2, 2])
    assert (root / "tiny-imagenet-200" / "val" / "val_annotations.txt").is_file()


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


def test_cifar10_from_an_image_folder_archive(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    _cifar10_tree(tmp_path / "src" / "cifar10-jpeg", train=1, test=1)
    root = tmp_path / "root"
    _tar(tmp_path / "src" / "cifar10-jpeg", root / "cifar10-jpeg.tar.xz")
    ds = load_dataset("cifar10", root, download=False)
    assert ds.classes == CIFAR10_CLASSES and ds.train_labels.tolist() == list(range(10))
    assert (root / "cache" / "cifar10.pt").is_file()


def download_from(monkeypatch, name: str, url: str) -> None:
    """Make ``name``'s original download come from ``url`` for one test."""
    from dataclasses import replace

    monkeypatch.setitem(nmu_data.DATASETS, name, replace(nmu_data.DATASETS[name], url=url))


def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch, no_network):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "cifar-100-python")):
        load_dataset("cifar100", tmp_path, download=False)
    with socket.socket() as closed:  # a loopback port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    download_from(monkeypatch, "cifar10", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    monkeypatch.setattr(nmu_archives, "DOWNLOAD_BACKOFF", 0.0)
    with pytest.raises(DataNotFoundError, match="(?s)download failed.*refused"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist-typo", tmp_path)


def test_corrupt_cache_is_rebuilt(tmp_path):
    ds = load_dataset("digits", tmp_path)
    (tmp_path / "cache" / "digits.pt").write_bytes(b"not a torch file")
    assert torch.equal(load_dataset("digits", tmp_path).train_labels, ds.train_labels)


# ------------------------------------------------ A1: safe unpack, partial trees, `python -m nmu.archives`

def test_partial_known_tree_is_refused_naming_the_folder(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=2, test=1)
    folder = tmp_path / "cifar10-jpeg"
    _cifar10_tree(folder, train=2, test=1)
    (folder / "train" / "cat" / "0001.jpg").unlink()  # what an interrupted unpack leaves
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", tmp_path, download=False)
    assert type(err.value).__name__ == "IncompleteDataError"
    message = str(err.value)
    assert str(folder) in message and f"rm -rf '{folder}'" in message
    assert "train/ has 19 images, expected 20" in message and "train/cat/ has 1 images, expected 2" in message
    assert not (tmp_path / "cache" / "cifar10.pt").exists()


def test_partial_tinyimagenet_val_is_refused(tmp_path, official_counts):
    official_counts("tiny-imagenet-200", classes=3, train=2, val=4)
    _tiny_tree(tmp_path / "tiny-imagenet-200")
    (tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_3.JPEG").unlink()
    with pytest.raises(DataNotFoundError, match="(?s)tiny-imagenet-200.*val/images/ has 3 images, expected 4"):
        load_dataset("tinyimagenet", tmp_path, download=False)


def test_interrupted_unpack_leaves_no_partial_tree(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=6, test=2)
    _cifar10_tree(tmp_path / "src" / "cifar10-jpeg", train=6, test=2)  # random JPEGs: xz cannot shrink them
    full = _tar(tmp_path / "src" / "cifar10-jpeg", tmp_path / "full.tar.xz").read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "cifar10-jpeg.tar.xz"
    archive.write_bytes(full[: len(full) // 2])  # the unpack stops half-way, as if interrupted
    with pytest.raises(DataNotFoundError, match="(?s)could not unpack.*cifar10-jpeg.tar.xz"):
        load_dataset("cifar10", root, download=False)
    assert not (root / "cifar10-jpeg").exists() and not list(root.glob(".cifar10-jpeg.unpack-*"))
    archive.write_bytes(full)
    ds = load_dataset("cifar10", root, download=False)
    assert ds.train_labels.bincount().tolist() == [6] * 10 and len(ds.test_labels) == 20


def test_unpack_removes_what_a_killed_unpack_left(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    _cifar10_tree(tmp_path / "src" / "cifar10-jpeg", train=1, test=1)
    root = tmp_path / "root"
    _tar(tmp_path / "src" / "cifar10-jpeg", root / "cifar10-jpeg.tar.xz")
    stale = root / ".cifar10-jpeg.unpack-x1y2z3" / "cifar10-jpeg" / "train" / "cat"
    _write_image(stale / "0000.jpg")
    assert len(load_dataset("cifar10", root, download=False).train_labels) == 10
    assert not list(root.glob(".cifar10-jpeg.unpack-*"))


def test_concurrent_loads_unpack_once_and_both_see_the_whole_tree(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=20, test=2)
    _cifar10_tree(tmp_path / "src" / "cifar10-jpeg", train=20, test=2)
    root = tmp_path / "root"
    _tar(tmp_path / "src" / "cifar10-jpeg", root / "cifar10-jpeg.tar.xz")
    start, results = threading.Barrier(2), []

    def load() -> None:
        start.wait()
        try:
            results.append(len(load_dataset("cifar10", root, download=False).train_labels))
        except Exception as err:  # noqa: BLE001 - reported below
            results.append(err)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200, 200]
    assert not list(root.glob(".cifar10-jpeg.unpack-*"))


def test_unpack_command_is_idempotent_and_detects_partial_trees(tmp_path, official_counts, capsys):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    official_counts("cifar100-jpeg", classes=100, train=1, test=1)
    official_counts("tiny-imagenet-200", classes=3, train=2, val=4)
    src, shared, root = tmp_path / "src", tmp_path / "shared", tmp_path / "root"
    _cifar10_tree(src / "cifar10-jpeg", train=1, test=1)
    _cifar100_tree(src / "cifar100-jpeg")
    _tiny_tree(src / "tiny-imagenet-200")
    for name in ("cifar10-jpeg", "cifar100-jpeg", "tiny-imagenet-200"):
        _tar(src / name, shared / f"{name}.tar.xz")
    (shared / "README.md").write_text("not an archive\n")
    assert nmu_archives.main(["unpack", str(shared), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("unpacked") == 3 and sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "cifar10-jpeg", "cifar100-jpeg", "tiny-imagenet-200"]
    assert len(list((root / "tiny-imagenet-200" / "train").glob("*/images/*.JPEG"))) == 6
    assert nmu_archives.main(["unpack", str(shared), "--root", str(root)]) == 0  # the second run does nothing
    quick = tmp_path / "quick-root"  # make data PROFILE=quick: no TinyImageNet; smoke: nothing at all
    assert nmu_archives.main(["unpack", str(shared), "--root", str(quick), "--only", *get_profile("quick").archives()]) == 0
    assert sorted(p.name for p in quick.iterdir() if not p.name.startswith(".")) == ["cifar10-jpeg", "cifar100-jpeg"]
    assert nmu_archives.main(["unpack", str(shared), "--root", str(tmp_path / "smoke-root"), "--only"]) == 0
    assert not (tmp_path / "smoke-root").exists() and "tiny-imagenet-200.tar.xz" in get_profile("paper").archives()
    assert capsys.readouterr().out.count("is complete, nothing to do") == 3
    (root / "cifar100-jpeg" / "test" / "rocket" / "rocket_s_000000.jpg").unlink()
    assert nmu_archives.main(["unpack", str(shared), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(root / "cifar100-jpeg") in err and "test/rocket/ has 0 images, expected 1" in err and "rm -rf" in err
    assert nmu_archives.main(["unpack", str(tmp_path / "nowhere"), "--root", str(root)]) == 1  # a typo in SHARED_DATA
    assert f"no folder {tmp_path / 'nowhere'} (make data: set SHARED_DATA" in capsys.readouterr().err
    assert nmu_archives.main(["unpack", str(tmp_path / "nowhere"), "--missing-ok"]) == 0  # make's default, online users
    assert "nothing to unpack" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert nmu_archives.main(["unpack", str(shared), "--root", str(not_a_folder)]) == 1
    err = capsys.readouterr().err
    assert f"nmu's data root {not_a_folder}" in err and "is a file, not a directory" in err
    with pytest.raises(SystemExit):
        nmu_archives.main(["unpack", str(shared), "--root", ""])
    assert "--root: is empty" in capsys.readouterr().err


# ------------------------------------------------------------------- A2: download timeout, offline

@pytest.mark.parametrize("name", ["cifar10", "tinyimagenet", "cifar100"])
def test_download_from_a_silent_server_times_out(tmp_path, monkeypatch, no_network, name):
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    download_from(monkeypatch, name, f"http://127.0.0.1:{silent.getsockname()[1]}/data.tar.gz")
    monkeypatch.setattr(nmu_archives, "DOWNLOAD_TIMEOUT", 0.5, raising=False)
    monkeypatch.setattr(nmu_archives, "DOWNLOAD_RETRIES", 2, raising=False)
    monkeypatch.setattr(nmu_archives, "DOWNLOAD_BACKOFF", 0.0, raising=False)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of(load_dataset, name, tmp_path)), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(20)
    elapsed = time.monotonic() - started
    silent.close()  # lets a hanging download fail, so no thread outlives the test
    worker.join(5)
    assert outcome, f"load_dataset({name!r}) still hung on a silent server after {elapsed:.0f} s"
    err = outcome[0]
    assert isinstance(err, DataNotFoundError), err
    assert "after 2 tries" in str(err) and "timed out" in str(err) and elapsed < 10
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 - returned to the test
        return err
    return None


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_never_touches_the_network_and_says_which_files(tmp_path, monkeypatch, no_network, how):
    opened = []
    monkeypatch.setattr(nmu_archives.urllib.request, "urlopen", lambda *a, **k: opened.append(a) or 1 / 0)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: opened.append(a) or 1 / 0)
    if how == "env":
        monkeypatch.setenv("NMU_OFFLINE", "1")
    kwargs = {} if how == "env" else {"download": False}
    expected = {"cifar10": ["cifar10-jpeg.tar.xz", "cifar-10-batches-py/data_batch_1..5", "test_batch"],
                "cifar100": ["cifar100-jpeg.tar.xz", "classes.csv", "cifar-100-python/train"],
                "cifar20": ["cifar100-jpeg.tar.xz", "cifar-100-python/meta"],
                "tinyimagenet": ["tiny-imagenet-200.tar.xz", "val/val_annotations.txt", "tiny-imagenet-200.zip"]}
    for name, files in expected.items():
        with pytest.raises(DataNotFoundError) as err:
            load_dataset(name, tmp_path, **kwargs)
        message = str(err.value)
        assert all(f in message for f in files), message
        assert str(tmp_path) in message and "Nothing was downloaded" in message
        if how == "env":
            assert "NMU_OFFLINE" in message
    assert opened == [] and no_network == []


class _FlakyArchiveServer(http.server.BaseHTTPRequestHandler):
    """Drops the first request without an answer, then serves ``payload``."""
    payload, requests = b"", []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if len(self.requests) == 1:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


def test_download_retries_and_unpacks_the_original_archive(tmp_path, monkeypatch, no_network):
    src = tmp_path / "src" / "cifar-10-batches-py"
    for i in range(1, 6):
        _pickle(src / f"data_batch_{i}", {"data": _rows(2), "labels": [i, i + 1]})
    _pickle(src / "test_batch", {"data": _rows(3), "labels": [7, 8, 9]})
    _pickle(src / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    _FlakyArchiveServer.payload, _FlakyArchiveServer.requests = archive.read_bytes(), []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyArchiveServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import hashlib

        download_from(monkeypatch, "cifar10", f"http://127.0.0.1:{server.server_port}/c10.tar.gz")
        monkeypatch.setitem(nmu_archives.PUBLISHED_MD5, "cifar-10-python.tar.gz",
                            hashlib.md5(archive.read_bytes()).hexdigest())
        monkeypatch.setattr(nmu_archives, "DOWNLOAD_TIMEOUT", 5.0, raising=False)
        monkeypatch.setattr(nmu_archives, "DOWNLOAD_BACKOFF", 0.0, raising=False)
        root = tmp_path / "root"
        ds = load_dataset("cifar10", root)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_FlakyArchiveServer.requests) == 2 and ds.test_labels.tolist() == [7, 8, 9]
    assert (root / "cifar-10-python.tar.gz").is_file() and (root / "cifar-10-batches-py" / "batches.meta").is_file()


# ---------------------------------------------------------------- A3: the cache follows its source

def test_cache_is_keyed_by_the_source_files(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    folder = tmp_path / "cifar10-jpeg"
    _cifar10_tree(folder, train=1, test=1)
    _write_image(folder / "train" / "cat" / "0000.jpg", size=32, value=0)
    first = load_dataset("cifar10", tmp_path, download=False)
    assert first.train_images[3].max() <= 8  # cat is class 3: a black image (JPEG noise aside)
    again = load_dataset("cifar10", tmp_path, download=False)
    assert torch.equal(again.train_images, first.train_images)  # unchanged source: from the cache
    _write_image(folder / "train" / "cat" / "0000.jpg", size=32, value=200)  # same name, new pixels
    assert load_dataset("cifar10", tmp_path, download=False).train_images[3].min() >= 190
    import shutil

    shutil.rmtree(folder)  # the cache alone is no data set
    with pytest.raises(DataNotFoundError):
        load_dataset("cifar10", tmp_path, download=False)


def test_cache_of_pickled_files_follows_them(tmp_path):
    base = tmp_path / "cifar-100-python"
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}
    _pickle(base / "meta", meta)
    _pickle(base / "test", {"data": _rows(2), "fine_labels": [5, 6], "coarse_labels": [17, 3]})
    _pickle(base / "train", {"data": _rows(2), "fine_labels": [0, 1], "coarse_labels": [4, 1]})
    assert load_dataset("cifar100", tmp_path, download=False).train_labels.tolist() == [0, 1]
    _pickle(base / "train", {"data": _rows(3), "fine_labels": [2, 3, 4], "coarse_labels": [14, 8, 0]})
    assert load_dataset("cifar100", tmp_path, download=False).train_labels.tolist() == [2, 3, 4]


# ------------------------------------------------------------------------ A6: image-folder checks

def test_train_and_test_images_of_different_sizes_are_refused(tmp_path):
    train = tmp_path / "t" / "train" / "x" / "0.png"
    test = tmp_path / "t" / "test" / "x" / "0.png"
    _write_image(train, size=8)
    _write_image(test, size=9)
    with pytest.raises(ValueError, match="differ in size") as err:
        load_image_folder(tmp_path / "t")
    assert "8x8" in str(err.value) and "9x9" in str(err.value)
    assert str(train) in str(err.value) and str(test) in str(err.value)


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_class_folder_is_refused(tmp_path, split):
    for s in ("train", "test"):
        for cls in ("a", "b"):
            _write_image(tmp_path / "t" / s / cls / "0.png")
    for f in (tmp_path / "t" / split / "b").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="without images") as err:
        load_image_folder(tmp_path / "t")
    assert str(tmp_path / "t" / split / "b") in str(err.value)


def test_unreadable_image_is_named(tmp_path):
    for s in ("train", "test"):
        _write_image(tmp_path / "t" / s / "a" / "0.jpg", size=32)
    bad = tmp_path / "t" / "train" / "a" / "1.jpg"
    _write_image(bad, size=32)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="cannot decode") as err:
        load_image_folder(tmp_path / "t")
    assert str(bad) in str(err.value)
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=str(bad)):
        load_image_folder(tmp_path / "t")


# ---------------------------------------------------------------- A14: known names beat folders

def test_known_names_win_over_folders_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("digits", "cifar10", "mydata"):
        for s in ("train", "test"):
            _write_image(tmp_path / name / s / "x" / "0.png")
    ds = load_dataset("digits", tmp_path / "root")
    assert len(ds.train_labels) + len(ds.test_labels) == 1797 and ds.source == "scikit-learn load_digits"
    with pytest.raises(DataNotFoundError, match="CIFAR-10 is not under"):
        load_dataset("cifar10", tmp_path / "root", download=False)
    for path in ("./digits", str(tmp_path / "digits"), "mydata", Path("cifar10")):
        assert len(load_dataset(path, tmp_path / "root").train_labels) == 1, path


# ------------------------------------------------------------------------ B: CIFAR-100 JPEG tree

@pytest.mark.parametrize("form", ["tree", "tar.xz archive"])
def test_cifar100_and_cifar20_from_the_jpeg_tree(tmp_path, official_counts, form):
    official_counts("cifar100-jpeg", classes=100, train=2, test=1)
    root = tmp_path / "root"
    if form == "tree":
        written = _cifar100_tree(root / "cifar100-jpeg", train=2, test=1)
    else:
        written = _cifar100_tree(tmp_path / "src" / "cifar100-jpeg", train=2, test=1)
        _tar(tmp_path / "src" / "cifar100-jpeg", root / "cifar100-jpeg.tar.xz")
    c100 = load_dataset("cifar100", root, download=False)
    assert c100.classes == tuple(FINE_NAMES) and c100.classes.index("rocket") == 69
    assert c100.train_labels.bincount().tolist() == [2] * 100 and c100.test_labels.tolist() == list(range(100))
    assert c100.mean == nmu_data.DATASETS["cifar100"].normalization[0] and c100.train_images.shape == (200, 3, 32, 32)
    rocket = c100.train_images[c100.train_labels == 69][0].float()
    assert (rocket - written[("train", "rocket", 0)].float()).abs().max() <= 2  # JPEG of a flat image
    c20 = load_dataset("cifar20", root, download=False)
    assert c20.classes == nmu_data.CIFAR100_COARSE_CLASSES == tuple(COARSE_NAMES)
    assert c20.fine_classes == c100.classes and c20.classes[19] == "vehicles_2"
    assert torch.equal(c20.train_fine, c100.train_labels) and torch.equal(c20.test_fine, c100.test_labels)
    assert torch.equal(c20.train_images, c100.train_images) and c20.num_classes == 20
    assert c20.test_labels[69] == 19 and c20.train_labels.bincount().tolist() == [10] * 20
    for f, fine in enumerate(c20.fine_classes):
        assert COARSE_NAMES[c20.test_labels[f]] in STANDARD_SUPERCLASSES and fine in \
            STANDARD_SUPERCLASSES[COARSE_NAMES[c20.test_labels[f]]]


def test_cifar100_pickles_and_jpeg_tree_are_interchangeable(tmp_path, official_counts):
    official_counts("cifar100-jpeg", classes=100, train=1, test=1)
    written = _cifar100_tree(tmp_path / "jpeg" / "cifar100-jpeg")
    base = tmp_path / "pickles" / "cifar-100-python"

    def rows(split):
        return np.stack([written[(split, f, 0)].numpy().reshape(-1) for f in FINE_NAMES])
    for split in ("train", "test"):
        _pickle(base / split, {"data": rows(split), "fine_labels": list(range(100)),
                               "coarse_labels": [COARSE_OF[f] for f in FINE_NAMES]})
    _pickle(base / "meta", {"fine_label_names": FINE_NAMES, "coarse_label_names": COARSE_NAMES})
    for name in ("cifar100", "cifar20"):
        a, b = (load_dataset(name, tmp_path / src, download=False) for src in ("pickles", "jpeg"))
        assert "pickled" in a.source and "JPEG tree" in b.source
        for field in ("name", "classes", "fine_classes", "mean", "std"):
            assert getattr(a, field) == getattr(b, field), field
        for field in ("train_labels", "test_labels", "train_fine", "test_fine"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None and y is None) or torch.equal(x, y), field
        assert a.train_images.shape == b.train_images.shape and a.train_images.dtype == b.train_images.dtype
        assert (a.train_images.float() - b.train_images.float()).abs().max() <= 2


def test_cifar100_jpeg_tree_needs_matching_classes_csv(tmp_path, official_counts):
    official_counts("cifar100-jpeg", classes=100, train=1, test=1)
    folder = tmp_path / "cifar100-jpeg"
    _cifar100_tree(folder)
    lines = (folder / "classes.csv").read_text().splitlines()
    lines[1], lines[2] = lines[2].replace("1,", "0,", 1), lines[1].replace("0,", "1,", 1)  # apple <-> fish
    (folder / "classes.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="classes.csv"):
        load_dataset("cifar100", tmp_path, download=False)
    (folder / "classes.csv").unlink()
    with pytest.raises(nmu_data.IncompleteDataError, match="classes.csv is missing"):
        load_dataset("cifar100", tmp_path, download=False)


def test_tinyimagenet_runs_end_to_end_under_the_paper_recipe(tmp_path, official_counts):
    """A TinyImageNet tree in the official layout (3 wnids, 20 train images each, 8x8 to stay cheap)
    through the paper profile's TinyImageNet recipe — ResNet-34, batch 256, crop padding 8 — and
    its presets: original, retrain and NatMU on a random split, every metric."""
    from dataclasses import replace

    from nmu.experiment import Experiment
    from nmu.profiles import get_profile
    from nmu.runs import run_setting

    base, wnids = tmp_path / "root" / "tiny-imagenet-200", ["n01", "n02", "n03"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish\nn02\tsalamander\nn03\ttabby cat\n")
    for w in wnids:
        for j in range(20):
            _write_image(base / "train" / w / "images" / f"{w}_{j}.JPEG", channels=1 if j == 0 else 3)
    for j in range(6):
        _write_image(base / "val" / "images" / f"val_{j}.JPEG")
    (base / "val" / "val_annotations.txt").write_text("".join(f"val_{j}.JPEG\t{wnids[j % 3]}\t0\t0\t8\t8\n"
                                                              for j in range(6)))
    official_counts("tiny-imagenet-200", classes=3, train=20, val=6)
    paper = get_profile("paper")
    short = replace(paper, name="paper-tiny-check", recipe=paper.recipe.with_(epochs=1, warmup_epochs=0))
    exp = Experiment(short, "tinyimagenet", root=tmp_path / "root", progress=False)
    assert (exp.arch, exp.recipe.batch_size, exp.recipe.crop_padding) == ("resnet34", 256, 8)
    table = run_setting(exp, exp.split("random", fraction=0.1), ["natmu"]).set_index("method")
    assert table.loc["natmu", "hparams"] == {"lr": 8.3e-4, "weight_decay": 7e-5, "delta": 0.045, "batch_size": 256}
    assert table["avg_gap"].notna().all() and table.loc["retrain", "acc_forget"] >= 0


# ------------------------------------------------- round 3: what an archive or a folder may hold

def _crafted(archive: Path, hostile: tarfile.TarInfo | None = None, mode: int = 0o644, uid: int = 0) -> Path:
    """A cifar10-jpeg archive with one (empty) image per class and split; ``hostile`` replaces the
    first image. Regular files get ``mode`` and owner ``uid``, folders mode 0o777."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:xz", format=tarfile.GNU_FORMAT) as tar:
        for split in ("train", "test"):
            for cls in CIFAR10_CLASSES:
                folder = tarfile.TarInfo(f"cifar10-jpeg/{split}/{cls}")
                folder.type, folder.mode = tarfile.DIRTYPE, 0o777
                tar.addfile(folder)
                info = tarfile.TarInfo(f"{folder.name}/0000.jpg")
                info.mode, info.uid = mode, uid
                if hostile is not None and info.name == hostile.name:
                    info = hostile
                tar.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return archive


def _member(kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo("cifar10-jpeg/train/airplane/0000.jpg")
    info.type, info.mode = {"block device": tarfile.BLKTYPE, "character device": tarfile.CHRTYPE,
                            "FIFO": tarfile.FIFOTYPE, "symbolic link": tarfile.SYMTYPE}[kind], 0o666
    info.devmajor, info.linkname = 7, "/etc/hostname"
    return info


@pytest.mark.parametrize("kind", ["block device", "character device", "FIFO", "symbolic link"])
def test_an_archive_member_that_is_not_a_file_or_folder_is_refused_naming_it(tmp_path, official_counts, kind):
    """As root, GNU tar makes devices, FIFOs and links to outside files; nmu keeps none of them."""
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    shared, root = tmp_path / "shared", tmp_path / "root"
    _crafted(shared / "cifar10-jpeg.tar.xz", _member(kind))
    with pytest.raises(nmu_archives.UnsafeArchiveError, match="cifar10-jpeg/train/airplane/0000.jpg") as err:
        nmu_archives.unpack(shared / "cifar10-jpeg.tar.xz", root)
    assert "refused, nothing of it was kept" in str(err.value)
    assert [p.name for p in root.iterdir()] == [".cifar10-jpeg.lock"]  # no tree, no temporary folder


def test_unpacked_files_have_no_owner_setuid_or_archive_permissions(tmp_path, official_counts):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    archive = _crafted(tmp_path / "shared" / "cifar10-jpeg.tar.xz", mode=0o4777, uid=4321)
    old = os.umask(0o022)
    try:
        target = nmu_archives.unpack(archive, tmp_path / "root")
    finally:
        os.umask(old)
    files = [p for p in target.rglob("*") if p.is_file()]
    folders = [target, *(p for p in target.rglob("*") if p.is_dir())]
    assert len(files) == 20 and {p.stat().st_mode & 0o7777 for p in files} == {0o644}
    assert {p.stat().st_mode & 0o7777 for p in folders} == {0o755}
    assert {p.stat().st_uid for p in files + folders} == {os.getuid()}


def test_a_tree_too_deep_to_be_a_data_set_is_refused_and_leaves_nothing_behind(tmp_path, official_counts):
    """1,300 nested folders broke os.walk and shutil.rmtree (RecursionError), and the temporary
    folder they left blocked every later unpack."""
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    shared, root = tmp_path / "shared", tmp_path / "root"
    shared.mkdir()
    with tarfile.open(shared / "cifar10-jpeg.tar.xz", "w:xz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("cifar10-jpeg/" + "d/" * 1300 + "f.jpg"), io.BytesIO(b""))
    with pytest.raises(nmu_archives.UnsafeArchiveError, match="cifar10-jpeg/d/d/.* is a folder nested too deep"):
        nmu_archives.unpack(shared / "cifar10-jpeg.tar.xz", root)
    assert not list(root.glob(".cifar10-jpeg.unpack-*"))
    stale = root / ".cifar10-jpeg.unpack-killed"  # as a killed unpack of it would leave
    subprocess.run(["tar", "-xf", str(shared / "cifar10-jpeg.tar.xz"), "-C", str(stale.parent)], check=True)
    (root / "cifar10-jpeg").rename(stale)
    _crafted(shared / "cifar10-jpeg.tar.xz")
    assert nmu_archives.unpack(shared / "cifar10-jpeg.tar.xz", root).is_dir()
    assert not stale.exists()


def test_a_full_disk_is_named_as_such_and_the_archive_extracted_once(tmp_path, official_counts, monkeypatch):
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    archive = _crafted(tmp_path / "shared" / "cifar10-jpeg.tar.xz")
    root = tmp_path / "root"
    free = nmu_archives.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(nmu_archives.shutil, "disk_usage", lambda p: free._replace(free=100 * 2 ** 20))
    with pytest.raises(nmu_archives.InsufficientSpaceError, match=r"only 100 MiB free .* unpacking cifar10-jpeg"):
        nmu_archives.unpack(archive, root)  # cifar10-jpeg takes about 240 MiB: refused before extracting
    monkeypatch.undo()
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tar").write_text("#!/bin/sh\necho 'tar: x.jpg: Cannot write: No space left on device' >&2\nexit 2\n")
    (fake / "tar").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("extracted a second time"))
    with pytest.raises(nmu_archives.InsufficientSpaceError, match=f"disk of {root} filled up .* about 240 MiB"):
        nmu_archives.unpack(archive, root)
    assert not list(root.glob(".cifar10-jpeg.unpack-*"))


def _symlinked_class_tree(tree: Path, elsewhere: Path) -> None:
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for j in range(3):
                _write_image(tree / split / cls / f"{j}.png")
    for j in range(3):
        _write_image(elsewhere / f"{j}.png")
        _write_image(tree / "test" / "c" / f"{j}.png")
    (tree / "train" / "c").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(tree / "train", target_is_directory=True)  # a cycle through the link


def test_files_under_a_symlinked_folder_key_the_cache_and_count(tmp_path, official_counts):
    tree, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
    _symlinked_class_tree(tree, elsewhere)
    assert len(load_image_folder(tree, root=tmp_path / "root").train_labels) == 9
    for j in range(3, 8):
        _write_image(elsewhere / f"{j}.png")
    assert len(load_image_folder(tree, root=tmp_path / "root").train_labels) == 14  # not the stale cache
    official_counts("cifar10-jpeg", classes=10, train=1, test=1)
    _cifar10_tree(tmp_path / "cifar10-jpeg", train=1, test=1)
    (tmp_path / "cifar10-jpeg" / "train" / "cat").rename(tmp_path / "cat-elsewhere")
    (tmp_path / "cifar10-jpeg" / "train" / "cat").symlink_to(tmp_path / "cat-elsewhere")
    assert len(load_dataset("cifar10", tmp_path, download=False).train_labels) == 10


def test_a_fifo_named_like_an_image_is_named_not_read(tmp_path):
    """Opening a FIFO blocks until someone writes to it: loading used to hang forever."""
    import signal

    for split in ("train", "test"):
        _write_image(tmp_path / "t" / split / "a" / "0.png")
    os.mkfifo(tmp_path / "t" / "train" / "a" / "zz.png")

    def hung(*_):
        raise TimeoutError("loading hangs on the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(ValueError, match=r"zz.png is a FIFO, not an image file: remove it"):
            load_image_folder(tmp_path / "t")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_16_bit_images_are_scaled_to_8_bits_and_32_bit_ones_refused(tmp_path):
    ramp = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "t" / split / cls).mkdir(parents=True)
            Image.fromarray(ramp).save(tmp_path / "t" / split / cls / "0.png")
    ds = load_image_folder(tmp_path / "t")
    assert torch.equal(ds.train_images[0, 0], torch.from_numpy((ramp >> 8).astype(np.uint8)))
    assert len(torch.unique(ds.train_images)) == 64 and torch.equal(ds.train_images[0, 0], ds.train_images[0, 2])
    odd = tmp_path / "t" / "train" / "a" / "1.png"
    Image.fromarray(ramp.astype(np.float32)).save(odd, format="TIFF")  # float pixels behind a .png name
    with pytest.raises(ValueError, match=rf"{odd} has floating-point pixels \(mode 'F'\)"):
        load_image_folder(tmp_path / "t")


class _Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_cifar_batch_runs_no_code_and_a_damaged_one_is_named(tmp_path, monkeypatch):
    base, marker = tmp_path / "cifar-10-batches-py", tmp_path / "ran"
    for i in range(1, 6):
        _pickle(base / f"data_batch_{i}", {"data": _rows(2), "labels": [0, 1]})
    _pickle(base / "test_batch", {"data": _rows(2), "labels": [0, 1]})
    _pickle(base / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    _pickle(base / "data_batch_1", {"data": _Planted(marker), "labels": []})
    with pytest.raises(nmu_data.IncompleteDataError, match=r"data_batch_1 .*asks to call posix.system"):
        load_dataset("cifar10", tmp_path, download=False)
    assert not marker.exists()
    _pickle(base / "data_batch_1", {"data": _rows(2), "labels": [0, 1]})
    _pickle(base / "batches.meta", {"names": []})
    with pytest.raises(nmu_data.IncompleteDataError, match=r"batches.meta is not a CIFAR batch: it lacks \['label_names'\]"):
        load_dataset("cifar10", tmp_path, download=False)


def test_a_local_original_archive_must_have_the_published_md5(tmp_path):
    root = tmp_path / "root"
    src = tmp_path / "src" / "cifar-10-batches-py"
    _pickle(src / "batches.meta", {"label_names": list(CIFAR10_CLASSES)})
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    with pytest.raises(nmu_data.IncompleteDataError, match="cifar-10-python.tar.gz is not the published archive"):
        load_dataset("cifar10", root, download=False)
    assert not (root / "cifar-10-batches-py").exists()
