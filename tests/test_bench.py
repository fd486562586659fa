"""The bench scripts that need no real dataset: cold_cost.py (a results folder's wall time split
into retraining, unlearning and the rest) and the studies train_step.py (the training step's
variants), memorisation.py (on the smoke profile's digits) and warm_overhead.py (its timer replaced)."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from conftest import REPO


def load(name: str = "cold_cost"):
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path if path.exists() else REPO / "bench" / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(folder, wall, runs=None):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"wall_seconds": wall}))
    if runs is not None:
        pd.DataFrame(runs, columns=["method", "seconds"]).to_csv(folder / "runs.csv", index=False)


def test_breakdown_splits_each_notebooks_wall_time(tmp_path, capsys):
    cold_cost = load()
    write(tmp_path / "sample_wise", 100.0, [("original", 0.0), ("retrain", 40.0), ("natmu", 10.0), ("rl", 5.0),
                                            ("natmu", 12.0)])
    write(tmp_path / "gallery", 3.0)
    write(tmp_path / "search", 999.0, [("natmu", 500.0)])  # written by `make search`, not `make figures`
    notebooks, methods = cold_cost.breakdown(tmp_path)
    row = notebooks.set_index("notebook").loc["sample_wise"]
    assert (row["retrains"], row["retrain_s"], row["runs"], row["unlearning_s"], row["rest_s"]) == (1, 40, 3, 27, 33)
    assert set(notebooks["notebook"]) == {"sample_wise", "gallery"}
    assert methods.set_index("method").loc["natmu", "total_s"] == 22 and list(methods["method"]) == ["natmu", "rl"]
    cold_cost.main([str(tmp_path), "--target-min", "2"])  # 40 + 27 s of retraining and unlearning
    assert "Retraining + unlearning alone: 1 min, within the 2-min target" in capsys.readouterr().out
    cold_cost.main([str(tmp_path), "--target-min", "1"])
    assert "alone: 1 min, above the 1-min target" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="make figures"):
        cold_cost.breakdown(tmp_path / "empty")


def test_train_step_compares_every_variant_with_nmus_configuration(capsys):
    table = load("train_step").main(["--arch", "tinycnn", "--steps", "2", "--no-compile", "--profile"])
    assert len(table) == 5 and table["speed_vs_nmu"].iloc[0] == 1.0 and (table["ms_per_step"] > 0).all()
    out = capsys.readouterr().out
    assert "NCHW layout" in out and "by operator kind" in out and "convolution" in out


def test_memorisation_reports_the_forget_gap_per_training_length(tmp_path, capsys):
    table = load("memorisation").main(["--profile", "smoke", "--epochs", "2", "4", "--root", str(tmp_path)])
    assert list(table["epochs"]) == [2, 4] and (table["train_s"] > 0).all()
    assert table["gap"].tolist() == (table["forget_acc_original"] - table["forget_acc_retrain"]).tolist()
    assert "experiment seed 100" in capsys.readouterr().out


def test_warm_overhead_adds_each_notebooks_steps_and_the_preflight(monkeypatch):
    warm = load("warm_overhead")
    assert len(warm.figures_notebooks()) == 9 and "search" not in warm.figures_notebooks()
    calls = []

    def fake_seconds(cmd, repeats):  # papermill on the empty notebook 2 s, on the imports one 5 s
        calls.append(cmd)
        assert repeats == 2
        if "papermill" in cmd:
            notebook = warm.nbformat.read(cmd[-2], as_version=4)
            assert notebook.metadata.kernelspec.name == "python3"
            return 5.0 if notebook.cells else 2.0
        return 3.0 if "nmu.scrub" in cmd else 4.0

    monkeypatch.setattr(warm, "seconds", fake_seconds)
    steps = warm.measure(2, "quick")
    assert steps == {"kernel": 2.0, "imports": 3.0, "scrub": 3.0, "preflight": 4.0} and len(calls) == 4
    text = warm.report(steps, 9, 120)
    assert "9 notebooks x 8.0 s + preflight 4.0 s = 76 s" in text and "leaves 44 s" in text
    with pytest.raises(SystemExit):
        warm.main(["--repeats", "0"])
