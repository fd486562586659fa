"""Checkpoint cache and the experiment's original / retrained models."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from nmu import cache
from nmu.cache import CheckpointError, cached, checkpoint_path
from nmu.experiment import Experiment

FIELDS = {"kind": "test", "n": 1}


def test_second_request_loads_instead_of_building(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.arange(3.0), "seconds": 1.5}

    rec, was_cached = cached("m", FIELDS, build, tmp_path)
    rec2, was_cached2 = cached("m", FIELDS, build, tmp_path)
    assert (was_cached, was_cached2) == (False, True) and len(calls) == 1
    assert torch.equal(rec2["w"], rec["w"]) and rec2["fields"] == FIELDS
    _, third = cached("m", {**FIELDS, "n": 2}, build, tmp_path)
    assert not third and len(calls) == 2  # another key, another model


def test_corrupted_checkpoint_is_set_aside_and_rebuilt(tmp_path):
    cached("m", FIELDS, lambda: {"w": torch.ones(1000)}, tmp_path)
    path = checkpoint_path("m", FIELDS, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    with pytest.warns(UserWarning, match="could not be read"):
        rec, was_cached = cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
    assert not was_cached and list(path.parent.glob("*.corrupt-*"))


def test_foreign_checkpoint_is_an_error(tmp_path):
    cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
    other = checkpoint_path("m", {**FIELDS, "n": 7}, tmp_path)
    checkpoint_path("m", FIELDS, tmp_path).rename(other)
    with pytest.raises(CheckpointError, match="delete it"):
        cached("m", {**FIELDS, "n": 7}, lambda: {"w": torch.ones(1)}, tmp_path)


def _slow_build(root: str, log: str) -> None:
    def build():
        with open(log, "a") as fh:
            fh.write("built\n")
        time.sleep(1.0)
        return {"w": torch.ones(1)}
    cached("m", FIELDS, build, Path(root))


def test_two_processes_never_build_the_same_model(tmp_path):
    log = tmp_path / "log.txt"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().count("built") == 1


def _racing_load(root: str, log: str, barrier) -> None:
    # Every process fails to read the corrupt file before any of them may act on it.
    real, calls = cache.load_tensors, []

    def load(path):
        calls.append(1)
        try:
            return real(path)
        except Exception:
            if len(calls) == 1:
                barrier.wait()
            raise
    cache.load_tensors = load

    def build():
        with open(log, "a") as fh:
            fh.write("built\n")
        return {"w": torch.ones(1)}
    cached("m", FIELDS, build, Path(root))


def test_processes_meeting_one_corrupt_checkpoint_set_it_aside_once(tmp_path):
    cached("m", FIELDS, lambda: {"w": torch.ones(1000)}, tmp_path)
    path = checkpoint_path("m", FIELDS, tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    log, ctx, n = tmp_path / "log.txt", mp.get_context("fork"), 4
    barrier = ctx.Barrier(n, timeout=30)
    procs = [ctx.Process(target=_racing_load, args=(str(tmp_path), str(log), barrier)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    assert log.read_text().count("built") == 1 and len(list(path.parent.glob("*.corrupt-*"))) == 1


DiskUsage = namedtuple("DiskUsage", "total used free")


def _free(monkeypatch, mib):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: DiskUsage(10**12, 0, mib * 2**20))


def test_too_little_free_space_is_reported_before_building(tmp_path, monkeypatch):
    calls = []
    _free(monkeypatch, 10)
    with pytest.raises(OSError, match=r"only 10 MiB free at .*checkpoints.*needs about 64 MiB"):
        cached("m", FIELDS, lambda: calls.append(1) or {"w": torch.ones(1)}, tmp_path)
    # another checkpoint of the same name tells the size to expect (a sparse file: no disk used)
    with open(checkpoint_path("m", {"other": 1}, tmp_path), "wb") as fh:
        fh.truncate(200 * 2**20)
    _free(monkeypatch, 100)
    with pytest.raises(OSError, match="needs about 200 MiB"):
        cached("m", FIELDS, lambda: calls.append(1) or {"w": torch.ones(1)}, tmp_path)
    assert not calls
    monkeypatch.setenv("NMU_MIN_FREE_MB", "0")
    _, was_cached = cached("n", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)  # no "n-*" yet: no minimum
    assert not was_cached


def test_a_failed_save_warns_and_returns_the_result(tmp_path, monkeypatch):
    def full_disk(obj, f):  # as torch.save fails on a full disk: its clean-up error on top of ENOSPC
        with open(f, "wb") if isinstance(f, (str, Path)) else f as fh:
            fh.write(b"PK\x03\x04 partial")
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 726")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.warns(UserWarning, match=r"could not save checkpoint .*m-.*\.pt \(\[Errno 28\] No space left.*"
                                         r"returning the result.*about 3\.8 MiB \([\d.]+ MiB free there\)"):
        rec, was_cached = cached("m", FIELDS, lambda: {"w": torch.ones(2**20 - 2**16)}, tmp_path)
    assert not was_cached and rec["w"].shape == (2**20 - 2**16,)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.endswith(".lock")] == []


def test_an_unusable_data_root_fails_before_building(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("NMU_DATA", str(not_a_dir))
    calls = []
    with pytest.raises(OSError, match=r"nmu's data root .*file \(set by \$NMU_DATA=.*Point \$NMU_DATA at"):
        cached("m", FIELDS, lambda: calls.append(1) or {"w": torch.ones(1)})
    assert not calls


def test_code_digest_follows_the_source(tmp_path, monkeypatch):
    from nmu.cache import code_digest

    mod = tmp_path / "nmu_digest_probe.py"
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    a = code_digest("nmu_digest_probe", "nmu.train")
    assert a == code_digest("nmu.train", "nmu_digest_probe") and len(a) == 16 and int(a, 16) >= 0
    assert a != code_digest("nmu.train") != code_digest("nmu.models")
    mod.write_text('"""A docstring."""\n# a comment\nX = (1)\n"""X\'s attribute docstring."""\n')
    code_digest.cache_clear()
    assert code_digest("nmu_digest_probe", "nmu.train") == a  # docs, comments and layout are not code
    mod.write_text("X = 2\n")
    assert code_digest("nmu_digest_probe", "nmu.train") == a  # once per process
    code_digest.cache_clear()
    assert code_digest("nmu_digest_probe", "nmu.train") != a
    with pytest.raises(ModuleNotFoundError):
        code_digest("nmu_no_such_module")
    assert "nmu_digest_probe" not in sys.modules  # read, not imported


def test_code_ignores_every_statement_that_is_only_a_string():
    from nmu.cache import _code

    documented = 'X = 1\n"""X\'s docstring."""\nclass A:\n    """Doc."""\n    y = 2\n    """y\'s docstring."""\n'
    assert _code(documented) == _code("X = 1\nclass A:\n    y = 2\n")
    assert _code('if X:\n    "a string"\nelse:\n    y = 1\n    "another"\n') == _code("if X:\n    pass\nelse:\n    y = 1\n")
    assert _code('X = "1"\n') != _code("X = 1\n") and _code('f("a")\n') != _code('f("b")\n')


def test_experiment_caches_original_and_retrains_from_the_same_init(smoke):
    again = Experiment("smoke", seed=0).original()
    assert again.was_cached and again.path.is_file()
    split = smoke.split("random", fraction=0.1)
    retrained = smoke.retrain(split)
    assert retrained.sample_loss.shape == (split.retain.size,)
    assert smoke.checkpoint("retrain", split) == retrained.path != again.path
    a, b = smoke.new_model().state_dict(), smoke.new_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other_seed = Experiment("smoke", seed=1)
    assert other_seed.checkpoint("original") != again.path


def test_hardest_split_uses_the_original_runs_losses(smoke):
    split = smoke.split("hardest", fraction=0.05)
    loss = smoke.original().sample_loss
    assert loss[split.forget].min() >= loss[split.retain].max()
    with pytest.raises(ValueError, match="fraction="):
        smoke.split("random")


def test_a_profile_with_train_per_class_trains_on_that_subset(smoke):
    from dataclasses import replace

    small = Experiment(replace(smoke.profile, name="smoke-subset", train_per_class=30), seed=0)
    assert small.data.train_labels.bincount().tolist() == [30] * 10
    assert torch.equal(small.data.test_labels, smoke.data.test_labels)
    assert "300 train" in repr(small) and small.checkpoint("original") != smoke.checkpoint("original")


def test_the_cpu_thread_count_is_part_of_a_trained_models_key(smoke):
    """Float reductions (hence weights) differ between thread counts, so each count has its own models."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = smoke.checkpoint("original")
        assert smoke.cache_fields("original")["threads"] == 1
        torch.set_num_threads(2)
        assert smoke.checkpoint("original") != one
    finally:
        torch.set_num_threads(threads)


def test_clean_deletes_nmus_folders_only_when_they_hold_only_nmus_files(tmp_path, capsys):
    from nmu.data import load_dataset

    root = tmp_path / "root"
    cached("original", {"a": 1}, lambda: {"w": torch.ones(1)}, root)
    load_dataset("digits", root)
    (root / "cifar10-jpeg").mkdir()  # a data set: not the cache
    mine = root / "checkpoints" / "my-thesis-model.pt"
    mine.write_bytes(b"not nmu's")
    with pytest.raises(ValueError, match=r"checkpoints holds what nmu does not write there \(my-thesis-model.pt\)"):
        cache.clean(root)
    assert mine.is_file() and (root / "cache" / "digits.pt").is_file()
    mine.unlink()
    assert cache.clean(root) == [root / "cache", root / "checkpoints"]
    assert sorted(p.name for p in root.iterdir()) == ["cifar10-jpeg"]


def test_an_empty_nmu_data_is_the_default_for_make_too(tmp_path):
    """``NMU_DATA=`` (set, empty) made ``make clean-cache`` run ``rm -rf "/cache" "/checkpoints"`` and
    ``make data`` unpack into the checkout."""
    import os
    import subprocess

    from conftest import REPO

    env = {**os.environ, "NMU_DATA": ""}
    dry = {target: subprocess.run(["make", "-n", "-C", str(REPO), "-o", ".venv/.installed", target], env=env,
                                  capture_output=True, text=True, check=True).stdout for target in ("clean-cache", "data")}
    assert "rm " not in dry["clean-cache"] and "-m nmu.cache clean" in dry["clean-cache"]
    assert f'--root "{REPO}/data"' in dry["data"]
    spaced = subprocess.run(["make", "-n", "-C", str(REPO), "figures", f"RESULTS={tmp_path}/a b"], env=env,
                            capture_output=True, text=True)
    assert spaced.returncode != 0 and "has a space" in spaced.stderr


def test_a_bad_min_free_space_is_named_and_the_refusal_says_it_was_set(tmp_path, monkeypatch):
    for value in ("abc", "-5", "nan"):
        monkeypatch.setenv("NMU_MIN_FREE_MB", value)
        with pytest.raises(ValueError, match=rf"\$NMU_MIN_FREE_MB='{value}': give the free space"):
            cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
    monkeypatch.setenv("NMU_MIN_FREE_MB", "1e9")
    with pytest.raises(OSError, match=r"building checkpoint m-.*\.pt \(at least \$NMU_MIN_FREE_MB=1e9\)"):
        cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)


def test_a_checkpoint_that_does_not_fit_the_model_is_named_with_the_way_out(smoke, tmp_path):
    """The right key and format but a tensor of another shape (edited by hand): torch's "size mismatch"
    came without the file's name."""
    from nmu.storage import save_tensors

    exp = Experiment("smoke", seed=0, root=tmp_path)
    record = cache.load_tensors(smoke.checkpoint("original"))
    record["state_dict"]["normalize.mean"] = torch.zeros(3)
    path = save_tensors(record, exp.checkpoint("original"))
    with pytest.raises(CheckpointError, match=rf"{path} holds weights that do not fit the model \(size mismatch for "
                                              r"normalize.mean.*\): .*Delete it to rebuild it"):
        exp.original()


def test_a_folder_in_a_checkpoints_place_is_named(tmp_path):
    checkpoint_path("m", FIELDS, tmp_path).mkdir(parents=True)
    with pytest.warns(cache.CheckpointNotSavedWarning, match="Something that is not a file is in its place: remove it"):
        cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)


def _hold_lock(path: str, seconds: float) -> None:
    from filelock import FileLock

    with FileLock(path):
        time.sleep(seconds)


def test_waiting_for_another_process_is_said_and_a_foreign_lock_explained(tmp_path, capfd, monkeypatch):
    lock = str(checkpoint_path("m", FIELDS, tmp_path)) + ".lock"
    Path(lock).parent.mkdir(parents=True)
    holder = mp.get_context("fork").Process(target=_hold_lock, args=(lock, 2.0))
    holder.start()
    deadline = time.monotonic() + 20
    while not Path(lock).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
    holder.join(10)
    assert "nmu: waiting for another process building m-" in capfd.readouterr().err
    import filelock

    def not_ours(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", not_ours)
    with pytest.raises(OSError, match=r"cannot open the lock file .*another user made it.*umask 002"):
        cached("m", {"other": 1}, lambda: {"w": torch.ones(1)}, tmp_path)


def test_a_checkpoint_folder_anyone_can_write_is_warned_about_once(tmp_path):
    folder = checkpoint_path("m", FIELDS, tmp_path).parent
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with pytest.warns(UserWarning, match=r"writable by every user.*chmod o-w"):
        cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached("m", FIELDS, lambda: {"w": torch.ones(1)}, tmp_path)
