"""Atomic writes: permissions, stale temporary files, unusable data roots."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from nmu import storage
from nmu.storage import atomic_write, load_tensors, save_tensors


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_files_and_directories_follow_the_umask(tmp_path, umask):
    f = save_tensors({"w": torch.ones(2)}, tmp_path / "a" / "b" / "w.pt")
    t = atomic_write(tmp_path / "a" / "t.txt", lambda tmp: tmp.write_text("x"))
    assert (_mode(f), _mode(t), _mode(tmp_path / "a"), _mode(tmp_path / "a" / "b")) == (0o644, 0o644, 0o755, 0o755)
    umask(0o027)
    g = atomic_write(tmp_path / "c" / "t.txt", lambda tmp: tmp.write_text("x"))
    assert (_mode(g), _mode(tmp_path / "c")) == (0o640, 0o750)
    assert torch.equal(load_tensors(f)["w"], torch.ones(2))


def _write_and_hang(path: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        time.sleep(60)
    atomic_write(Path(path), write)


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "w.pt"
    proc = mp.get_context("fork").Process(target=_write_and_hang, args=(str(path),))
    proc.start()
    deadline = time.monotonic() + 20
    while not list(tmp_path.glob(".w.pt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    [left] = tmp_path.glob(".w.pt.*.tmp")
    save_tensors({"w": torch.ones(1)}, path)
    assert not left.exists() and list(tmp_path.iterdir()) == [path]


def test_stale_temp_files_go_and_live_writers_files_stay(tmp_path):
    host = getattr(storage, "_HOST", "0" * 8)
    other = "f" * 8 if host != "f" * 8 else "e" * 8
    dead = subprocess.Popen(["true"])
    dead.wait()
    hours_ago, hours_ahead = time.time() - 2 * 3600, time.time() + 2 * 3600
    names = {
        "dead writer": f".w.pt.{host}-{dead.pid}-0123abcd.tmp",
        "old, writer unknown": ".w.pt.abcd1234.tmp",  # tempfile.mkstemp's name, as older nmu wrote
        "live writer, recent": f".w.pt.{host}-{os.getpid()}-0123abcd.tmp",
        "live pid, old (the pid taken over by a new process)": f".w.pt.{host}-{os.getpid()}-4567abcd.tmp",
        "recent, writer unknown": ".w.pt.x1y2z3w4.tmp",
        "other host, recent": f".w.pt.{other}-{dead.pid}-0123abcd.tmp",
        "other host, from the future (a skewed clock)": f".w.pt.{other}-{dead.pid}-4567abcd.tmp",
        "another file's, old": ".v.pt.abcd1234.tmp",
    }
    for what, name in names.items():
        (tmp_path / name).write_bytes(b"x")
        if "old" in what or "future" in what:
            stamp = hours_ahead if "future" in what else hours_ago
            os.utime(tmp_path / name, (stamp, stamp))
    save_tensors({"w": torch.ones(1)}, tmp_path / "w.pt")
    left = {what for what, name in names.items() if (tmp_path / name).exists()}
    assert left == {"live writer, recent", "recent, writer unknown", "other host, recent", "another file's, old"}


def test_an_unusable_data_root_is_named_with_the_way_out(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("NMU_DATA", str(not_a_dir))
    with pytest.raises(OSError, match=rf"nmu's data root {not_a_dir} \(set by \$NMU_DATA=.*is a file, not a "
                                      r"directory.*Point \$NMU_DATA at a writable directory"):
        save_tensors({"w": torch.ones(1)}, storage.data_root() / "datasets" / "x.pt")
    elsewhere = tmp_path / "results"
    elsewhere.write_text("")
    with pytest.raises(OSError) as err:  # outside the data root: the plain error
        atomic_write(elsewhere / "x.txt", lambda tmp: tmp.write_text("x"))
    assert "data root" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only directories")
def test_a_read_only_data_root_is_named(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    monkeypatch.setenv("NMU_DATA", str(ro))
    with pytest.raises(OSError, match=r"nmu's data root .*not writable.*\$NMU_DATA"):
        save_tensors({"w": torch.ones(1)}, ro / "checkpoints" / "x.pt")


def test_yes_no_variables_are_read_one_way_and_a_typo_is_named(monkeypatch):
    from nmu.archives import offline

    for value, on in [("1", True), ("YES", True), ("on", True), ("0", False), ("false", False), ("Off", False), ("", False)]:
        monkeypatch.setenv("NMU_OFFLINE", value)
        monkeypatch.setenv("NMU_PROGRESS", value)
        assert offline() is on and storage.progress_enabled() is (on or value == "")
    for value in ("y", "2"):  # used to mean: online, silently
        monkeypatch.setenv("NMU_OFFLINE", value)
        with pytest.raises(ValueError, match=rf"\$NMU_OFFLINE='{value}': use 1/true/yes/on or 0/false/no/off"):
            offline()


def test_a_relative_or_looping_nmu_data_is_resolved_one_way_or_named(tmp_path, monkeypatch):
    monkeypatch.setenv("NMU_DATA", "mydata")
    for cwd in (tmp_path, storage.CHECKOUT / "notebooks"):  # `make` runs at the top, `make lab` kernels in notebooks/
        monkeypatch.chdir(cwd)
        assert storage.data_root() == storage.CHECKOUT / "mydata"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    monkeypatch.setenv("NMU_DATA", str(tmp_path / "a"))
    with pytest.raises(storage.DataRootError, match=rf"\$NMU_DATA={tmp_path / 'a'} cannot be used: .*Point \$NMU_DATA"):
        storage.data_root()


def test_progress_goes_to_the_terminal_that_runs_make_not_into_the_notebook(monkeypatch, capfd):
    """``NMU_PROGRESS=terminal`` (what make sets for papermill): bars on the process's own stderr (fd 2,
    the terminal), none on ``sys.stderr`` (a kernel's, which the executed notebook records)."""
    import io
    import sys

    kernel_stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", kernel_stderr)
    monkeypatch.setenv("NMU_PROGRESS", "terminal")
    assert storage.progress_enabled()
    for _ in storage.progress_bar(iterable=range(3), desc="models"):
        pass
    assert "models: 100%" in capfd.readouterr().err and kernel_stderr.getvalue() == ""
    monkeypatch.setenv("NMU_PROGRESS", "0")
    for _ in storage.progress_bar(iterable=range(3), desc="models"):
        pass
    assert "models" not in capfd.readouterr().err + kernel_stderr.getvalue()
