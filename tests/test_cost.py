"""make figures' preflight: this machine against the one that computed the results it would replace."""

from __future__ import annotations

import json

import pytest

from nmu import cost

HERE = {"device": "CPU test (2 threads)", "cpu": "AVX2", "precision": "fp32", "threads": 2, "step_ms": 50.0}


def _results(tmp_path, **machine):
    for name, wall in (("sample_wise", 600.0), ("claims", 60.0)):
        (tmp_path / name).mkdir(parents=True)
        body = {"notebook": name, "wall_seconds": wall, "torch_threads": 2, **({"machine": machine} if machine else {})}
        (tmp_path / name / "manifest.json").write_text(json.dumps(body))
    (tmp_path / "search" / "random").mkdir(parents=True)  # not make figures' (make search's): not counted
    (tmp_path / "search" / "random" / "manifest.json").write_text(json.dumps({"wall_seconds": 9e9}))
    return tmp_path


@pytest.fixture
def here(monkeypatch):
    monkeypatch.setattr(cost, "machine", lambda profile: dict(HERE))


def test_a_machine_like_theirs_is_told_it_reproduces_them_and_how_long_it_takes(tmp_path, here):
    results = _results(tmp_path, precision="fp32", threads=2, step_ms=25.0)  # theirs twice as fast
    lines = cost.preflight("smoke", results)
    assert "precision fp32, 2 torch thread(s), 50.0 ms per training step" in lines[0]
    assert "this machine should reproduce them" in lines[1] and f"outputs go to {results}/" in lines[2]
    assert "about 22 min" in lines[3]  # (600 + 60) s x 50 / 25


def test_another_precision_is_told_up_front_with_the_way_out(tmp_path, here):
    results = _results(tmp_path, precision="bf16", threads=2, step_ms=25.0)
    assert "will NOT reproduce their numbers" in cost.preflight("smoke", results)[1]
    assert "NMU_PRECISION" in cost.preflight("smoke", results)[1] and "RESULTS=" in cost.preflight("smoke", results)[1]


def test_results_without_a_recorded_machine_say_so_and_their_own_time(tmp_path, here):
    lines = cost.preflight("smoke", _results(tmp_path))
    assert "record no precision" in lines[1] and "add up to 11 min on their machine" in lines[3]
    assert cost.preflight("smoke", tmp_path / "none")[1].startswith("no results in")


def test_calibration_times_real_training_steps():
    assert cost.calibrate("smoke", steps=2) > 0
    assert cost.machine("smoke")["precision"] in ("bf16", "fp32")
