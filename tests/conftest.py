"""Every test gets a private data root (so the user's cache is never read or written), quiet
progress bars and one intra-op thread (the tests' tiny models run faster on one thread, and do not
slow to a crawl when the 2-core machine is busy). ``shared_cifar10`` points at the real CIFAR-10
archive when the checkout has one, and ``real_data_root`` is one data root per session for the real
data sets of ``../shared/data``, so each archive is unpacked and decoded once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_CIFAR10 = SHARED_DATA / "cifar10-jpeg.tar.xz"


@pytest.fixture(scope="session", autouse=True)
def private_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nmu-data")
    old = {k: os.environ.get(k) for k in ("NMU_DATA", "NMU_PROGRESS")}
    os.environ["NMU_DATA"] = str(root)
    os.environ["NMU_PROGRESS"] = "0"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield root
    torch.set_num_threads(threads)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def smoke():
    """The smoke experiment (digits + tinycnn) with its original model trained once per session."""
    from nmu.experiment import Experiment

    exp = Experiment("smoke", seed=0)
    exp.original()
    return exp


@pytest.fixture
def shared_cifar10() -> Path:
    if not SHARED_CIFAR10.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {SHARED_CIFAR10}")
    return SHARED_CIFAR10


@pytest.fixture(scope="session")
def real_data_root(tmp_path_factory: pytest.TempPathFactory):
    """A data root shared by the real-data tests of a session, with links to the shared archives (nmu
    unpacks them on first use); decoded tensors are cached there, so each set is decoded once."""
    root = tmp_path_factory.mktemp("real-data")
    for archive in sorted(SHARED_DATA.glob("*.tar.*")) if SHARED_DATA.is_dir() else []:
        (root / archive.name).symlink_to(archive)
    yield root
    # 230,000 files and 1.7 GB of caches, not worth keeping: removed by a detached, niced `rm` so the
    # session does not wait for it (minutes on a busy 2-core machine).
    rm = shutil.which("rm")
    if rm:
        subprocess.Popen(["nice", "-n", "19", rm, "-rf", str(root)] if shutil.which("nice") else [rm, "-rf", str(root)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    else:
        shutil.rmtree(root, ignore_errors=True)


def committed(folder: str) -> list[Path]:
    """The files under ``REPO/folder`` that git tracks: what a clone holds, not what the user's own runs
    (``make smoke``, a notebook run elsewhere) added beside them."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", folder], capture_output=True,
                            check=True).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def streams_run_together(notebook: dict) -> bool:
    """Whether a cell of ``notebook`` has two outputs of one stream in a row, or a carriage return in one."""
    for cell in notebook["cells"]:
        streams = [(o.get("name"), "".join(o.get("text", ""))) if o["output_type"] == "stream" else (None, "")
                   for o in cell.get("outputs", [])]
        if any("\r" in text for _, text in streams) or any(a[0] and a[0] == b[0] for a, b in zip(streams, streams[1:])):
            return True
    return False
