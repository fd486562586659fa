"""Checkpoint cache and the experiment's original / retrained models."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest
import torch

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
