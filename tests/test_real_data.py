"""The loaders and ``make data`` on the real archives in ../shared/data (each test skips when its
archive is absent). All tests share one data root per session (``real_data_root``): each archive is
unpacked once (by the ``make data`` test, or by the first load) and decoded once, into the root's
cache; the decoded sets are kept for the module. Takes about 1.5 min on 2 busy cores, most of it
decoding TinyImageNet's 110,000 JPEGs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_data import STANDARD_SUPERCLASSES

from nmu.archives import ARCHIVES, CIFAR10_CLASSES
from nmu.data import CIFAR100_COARSE_CLASSES, load_dataset

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
ARCHIVE_OF = {"cifar10": "cifar10-jpeg.tar.xz", "cifar100": "cifar100-jpeg.tar.xz", "cifar20": "cifar100-jpeg.tar.xz",
              "tinyimagenet": "tiny-imagenet-200.tar.xz"}
PUBLISHED_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409),
                  "tinyimagenet": (0.4802, 0.4481, 0.3975)}


def _make_data(shared: Path, root: Path, profile: str = "quick") -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("no make")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(["make", "-s", "-C", str(REPO), "-o", ".venv/.installed", "data", f"PY={sys.executable}",
                           f"SHARED_DATA={shared}", f"NMU_DATA={root}", f"PROFILE={profile}"],
                          capture_output=True, text=True, env=env, timeout=500)


@pytest.fixture(scope="module")
def real(real_data_root):
    """``real(name)``: the data set decoded from the real archive (once per module), or skip."""
    loaded = {}

    def load(name: str):
        if not (SHARED / ARCHIVE_OF[name]).is_file():
            pytest.skip(f"real archive not found at {SHARED / ARCHIVE_OF[name]}")
        if name not in loaded:
            loaded[name] = load_dataset(name, real_data_root, download=False)
        return loaded[name]
    return load


def _channel_means(images: torch.Tensor) -> list[float]:
    total = torch.zeros(3, dtype=torch.float64)
    for chunk in images.split(2000):
        total += chunk.sum(dim=(0, 2, 3), dtype=torch.float64)
    return (total / (images.shape[0] * images.shape[2] * images.shape[3] * 255)).tolist()


def test_make_data_unpacks_every_shared_archive_once(real_data_root):
    """``make data PROFILE=paper``: every archive of the paper's three data sets (quick: no TinyImageNet)."""
    archives = sorted(a for a in ARCHIVES if (SHARED / a).is_file())
    if not archives:
        pytest.skip(f"no archive in {SHARED}")
    first = _make_data(SHARED, real_data_root, "paper")
    assert first.returncode == 0, first.stdout + first.stderr
    for a in archives:
        assert (real_data_root / ARCHIVES[a]).is_dir(), a
    assert not list(real_data_root.glob(".*.unpack-*"))
    started = time.monotonic()
    second = _make_data(SHARED, real_data_root, "paper")  # idempotent: only checks the trees
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("is complete, nothing to do") == len(archives) and "unpacked" not in second.stdout
    assert time.monotonic() - started < 30


def test_make_data_reports_a_partial_tree_and_leaves_it(tmp_path, shared_cifar10):
    shared, root = tmp_path / "shared", tmp_path / "root"
    shared.mkdir()
    (shared / shared_cifar10.name).symlink_to(shared_cifar10)
    partial = root / "cifar10-jpeg" / "train" / "cat"
    partial.mkdir(parents=True)
    (partial / "0000.jpg").write_bytes(b"half an unpack")
    run = _make_data(shared, root)
    assert run.returncode != 0
    assert str(root / "cifar10-jpeg") in run.stderr and "rm -rf" in run.stderr and "test/ is missing" in run.stderr
    assert [p.name for p in (root / "cifar10-jpeg").iterdir()] == ["train"]


def test_real_cifar10(real, real_data_root):
    ds = real("cifar10")
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert ds.train_labels.bincount().tolist() == [5000] * 10 and ds.test_labels.bincount().tolist() == [1000] * 10
    assert ds.classes == CIFAR10_CLASSES and "JPEG tree" in ds.source
    assert _channel_means(ds.train_images) == pytest.approx(PUBLISHED_MEAN["cifar10"], abs=0.005)
    coarse = load_dataset("cifar10-coarse", real_data_root, download=False)
    assert coarse.num_classes == 5 and coarse.train_labels.bincount().tolist() == [10000] * 5


def test_real_cifar100(real):
    ds = real("cifar100")
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert ds.train_labels.bincount().tolist() == [500] * 100 and ds.test_labels.bincount().tolist() == [100] * 100
    assert ds.classes.index("rocket") == 69 and ds.classes[0] == "apple" and ds.classes[99] == "worm"
    assert ds.classes == tuple(sorted(f for members in STANDARD_SUPERCLASSES.values() for f in members))
    assert _channel_means(ds.train_images) == pytest.approx(PUBLISHED_MEAN["cifar100"], abs=0.005)


def test_real_cifar20_has_the_standard_superclasses(real):
    fine, ds = real("cifar100"), real("cifar20")
    assert ds.classes == CIFAR100_COARSE_CLASSES == tuple(STANDARD_SUPERCLASSES)  # the pickles' coarse names
    assert ds.fine_classes == fine.classes and torch.equal(ds.train_images, fine.train_images)
    assert torch.equal(ds.train_fine, fine.train_labels) and torch.equal(ds.test_fine, fine.test_labels)
    assert ds.train_labels.bincount().tolist() == [2500] * 20 and ds.test_labels.bincount().tolist() == [500] * 20
    rocket = ds.fine_classes.index("rocket")
    assert set(ds.train_labels[ds.train_fine == rocket].tolist()) == {19} and ds.classes[19] == "vehicles_2"
    coarse_map = {c: sorted({ds.fine_classes[f] for f in ds.train_fine[ds.train_labels == i].tolist()})
                  for i, c in enumerate(ds.classes)}
    assert coarse_map == {c: sorted(members) for c, members in STANDARD_SUPERCLASSES.items()}


def test_real_tinyimagenet(real, real_data_root):
    ds = real("tinyimagenet")
    assert ds.train_images.shape == (100000, 3, 64, 64) and ds.test_images.shape == (10000, 3, 64, 64)
    assert ds.train_images.dtype == torch.uint8 and ds.num_classes == 200
    assert ds.train_labels.bincount().tolist() == [500] * 200 and ds.test_labels.bincount().tolist() == [50] * 200
    wnids = sorted((real_data_root / "tiny-imagenet-200" / "wnids.txt").read_text().split())
    assert len(wnids) == 200 and ds.classes[wnids.index("n03444034")] == "go-kart"
    assert ds.test_labels[0] == wnids.index("n03444034")  # val_0.JPEG in val_annotations.txt
    grey = sum(int(((c[:, 0] == c[:, 1]) & (c[:, 1] == c[:, 2])).flatten(1).all(1).sum())
               for c in ds.train_images.split(5000))
    assert grey >= 1821  # the greyscale JPEGs, now RGB with three equal channels
    assert _channel_means(ds.train_images) == pytest.approx(PUBLISHED_MEAN["tinyimagenet"], abs=0.005)


def test_real_sets_load_from_the_session_cache(real, real_data_root):
    for name in ("cifar100", "tinyimagenet"):
        decoded = real(name)
        started = time.monotonic()
        again = load_dataset(name, real_data_root, download=False)
        assert time.monotonic() - started < 20, f"{name} was decoded again instead of read from the cache"
        assert torch.equal(again.test_images, decoded.test_images) and again.classes == decoded.classes
