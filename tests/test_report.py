"""Tables: full precision in CSV; readable Markdown (constant columns stated once, small values in %g)."""

from __future__ import annotations

import pandas as pd

from nmu.report import save_table


def test_save_table_csv_and_markdown(tmp_path):
    df = pd.DataFrame({"profile": ["quick", "quick"], "lr": [1e-4, 3e-3], "avg_gap": [2.5123, 10.0]})
    csv, md = save_table(df, tmp_path, "t")
    assert pd.read_csv(csv).equals(df)
    text = md.read_text()
    assert text.startswith("- profile: quick\n") and "| quick" not in text
    assert "0.0001" in text and "0.003" in text and "2.51" in text and "2.5123" not in text


def _notebook(tmp_path, monkeypatch, source):
    """A template notebooks/<name>.ipynb under a fake repository root whose parameters cell is ``source``."""
    import json

    import nmu.report as report

    (tmp_path / "notebooks").mkdir()
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source, "outputs": [],
              "execution_count": None}]
    (tmp_path / "notebooks" / "demo.ipynb").write_text(json.dumps({"cells": cells}))
    monkeypatch.setattr(report, "REPO", tmp_path)
    return report


PARAMS = 'profile = "quick"\nfraction = 0.1\nmethods: list | None = None\nepochs = 3\nout_dir = None\n'


def test_start_records_the_declared_parameters_and_rejects_unknown_or_mistyped(tmp_path, monkeypatch):
    import os

    import pytest

    report = _notebook(tmp_path, monkeypatch, PARAMS)
    ns = {"profile": "smoke", "fraction": 1, "methods": ["natmu"], "epochs": 3, "out_dir": None,
          "In": [], "_i1": "x", "os": os, "start": report.start}
    r = report.start("demo", ns)
    assert r.parameters == {"profile": "smoke", "fraction": 1, "methods": ["natmu"], "epochs": 3, "out_dir": None}
    assert r.out_dir == tmp_path / "results" / "smoke" / "demo"  # follows the profile, from the repository root
    for bad, match in [({"fractoin": 0.2}, r"unknown parameter\(s\) \['fractoin'\]"),
                       ({"methods": "natmu"}, "methods='natmu' must be list or NoneType"),
                       ({"fraction": "0.1"}, "must be float"), ({"epochs": 2.5}, "epochs=2.5 must be int")]:
        with pytest.raises(report.NotebookParameterError, match=match):
            report.start("demo", {**ns, **bad})
    assert report.start("demo", {**ns, "out_dir": "elsewhere/x"}).out_dir == tmp_path / "elsewhere" / "x"


def test_report_swaps_in_one_whole_run(tmp_path, monkeypatch):
    """An interrupted run leaves the previous outputs untouched; a finished one replaces them whole."""
    import json

    report = _notebook(tmp_path, monkeypatch, PARAMS)
    first = report.start("demo", {"profile": "smoke"})
    first.table(pd.DataFrame({"a": [1]}), "t1")
    first.table(pd.DataFrame({"a": [1]}), "t2")
    first.finish()
    out = first.out_dir
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "t1.csv", "t1.md", "t2.csv", "t2.md"]
    assert json.loads((out / "manifest.json").read_text())["torch_threads"] >= 1
    interrupted = report.start("demo", {"profile": "smoke"})
    interrupted.table(pd.DataFrame({"a": [2]}), "t1")  # ...and the kernel dies here
    assert pd.read_csv(out / "t1.csv")["a"].tolist() == [1]
    second = report.start("demo", {"profile": "smoke"})
    second.table(pd.DataFrame({"a": [3]}), "t1")
    second.finish()
    assert pd.read_csv(out / "t1.csv")["a"].tolist() == [3] and not (out / "t2.csv").exists()
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no partial or old folders left
