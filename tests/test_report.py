"""Tables: full precision in CSV; readable Markdown (constant columns stated once, small values in %g)."""

from __future__ import annotations

from pathlib import Path

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
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["torch_threads"] >= 1 and manifest["machine"]["step_ms"] > 0  # make figures' preflight reads it
    assert manifest["machine"]["precision"] in ("bf16", "fp32") and manifest["machine"]["threads"] >= 1
    interrupted = report.start("demo", {"profile": "smoke"})
    interrupted.table(pd.DataFrame({"a": [2]}), "t1")  # ...and the kernel dies here
    assert pd.read_csv(out / "t1.csv")["a"].tolist() == [1]
    second = report.start("demo", {"profile": "smoke"})
    second.table(pd.DataFrame({"a": [3]}), "t1")
    second.finish()
    assert pd.read_csv(out / "t1.csv")["a"].tolist() == [3] and not (out / "t2.csv").exists()
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no partial or old folders left


def test_an_out_dir_that_is_not_this_notebooks_run_is_refused_and_kept(tmp_path, monkeypatch):
    """Only a new or empty folder, or an earlier run of the same notebook, is replaced; the repository,
    results/, a profile's results, home and their parents are refused, before anything is computed."""
    import json

    import pytest

    report = _notebook(tmp_path, monkeypatch, PARAMS)
    theirs = tmp_path / "thesis"
    (theirs / "sub").mkdir(parents=True)
    (theirs / "thesis.tex").write_text("years of work")
    (theirs / "sub" / "data.csv").write_text("1,2")
    other_notebook = tmp_path / "other-run"
    other_notebook.mkdir()
    (other_notebook / "manifest.json").write_text(json.dumps({"notebook": "sample_wise"}))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    (tmp_path / "results" / "quick" / "demo").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for out_dir, message in [(theirs, "holds files that are not an earlier run of this notebook"),
                             (other_notebook, "no manifest.json of 'demo'"), (a_file, "is a file"),
                             (tmp_path, "is or holds"), (tmp_path / "results", "is or holds"),
                             (tmp_path / "results" / "quick", "is or holds"), (tmp_path.parent, "is or holds"),
                             (tmp_path / "home", "is or holds"), ("results", "is or holds")]:
        before = sorted(p for p in tmp_path.rglob("*"))
        with pytest.raises(report.OutDirError, match=message):
            report.start("demo", {"profile": "smoke", "out_dir": str(out_dir)})
        assert sorted(p for p in tmp_path.rglob("*")) == before, out_dir
    assert (theirs / "thesis.tex").read_text() == "years of work" and (theirs / "sub" / "data.csv").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    first = report.start("demo", {"profile": "smoke", "out_dir": str(empty)})
    first.finish()
    second = report.start("demo", {"profile": "smoke", "out_dir": str(empty)})  # its own earlier run: replaced
    (empty / "added-meanwhile.txt").write_text("x")
    (empty / "manifest.json").unlink()
    with pytest.raises(report.OutDirError, match="This run's outputs are in .*partial"):
        second.finish()
    assert (empty / "added-meanwhile.txt").is_file() and (second.work / "manifest.json").is_file()


def test_a_symlinked_out_dir_receives_the_outputs_and_stays_a_link(tmp_path, monkeypatch):
    report = _notebook(tmp_path, monkeypatch, PARAMS)
    shared = tmp_path / "shared" / "qs"
    shared.mkdir(parents=True)
    link = tmp_path / "results" / "smoke" / "demo"
    link.parent.mkdir(parents=True)
    link.symlink_to(shared)
    for _ in range(2):
        run = report.start("demo", {"profile": "smoke"})
        run.table(pd.DataFrame({"a": [1]}), "t")
        run.finish()
    assert link.is_symlink() and (shared / "t.csv").is_file() and (shared / "manifest.json").is_file()
    assert sorted(p.name for p in link.parent.iterdir()) == ["demo"]
    assert sorted(p.name for p in shared.parent.iterdir()) == ["qs"]


def test_partial_folders_of_live_or_other_hosts_runs_are_kept(tmp_path, monkeypatch):
    """A partial folder is removed once its run is gone: here when its process has ended, another
    host's only when it is a week old (its process cannot be checked from here)."""
    import os
    import subprocess
    import time

    from nmu import storage

    report = _notebook(tmp_path, monkeypatch, PARAMS)
    dead = subprocess.Popen(["true"])
    dead.wait()
    here, other = storage._HOST, "f" * 8 if storage._HOST != "f" * 8 else "e" * 8
    parent = tmp_path / "results" / "smoke"
    names = {"this host, ended": f".demo.partial-{here}-{dead.pid}",
             "this host, running": f".demo.partial-{here}-{os.getppid()}",
             "other host, running": f".demo.partial-{other}-{dead.pid}",
             "other host, a week old": f".demo.partial-{other}-{dead.pid + 1}"}
    for what, name in names.items():
        (parent / name).mkdir(parents=True)
        (parent / name / "runs.csv").write_text("x")
    week = time.time() - 8 * 24 * 3600
    os.utime(parent / names["other host, a week old"], (week, week))
    run = report.start("demo", {"profile": "smoke"})
    left = {what for what, name in names.items() if (parent / name).exists()}
    assert left == {"this host, running", "other host, running"} and run.work.is_dir()
    nested = parent / "search" / f".random.partial-{here}-{dead.pid}"  # make clean: every folder of results/
    nested.mkdir(parents=True)
    report.main(["clean", str(tmp_path / "results")])
    assert not nested.exists() and run.work.is_dir() and (parent / names["this host, running"]).is_dir()


def test_printed_paths_are_relative_to_the_checkout():
    """An executed notebook prints where its outputs went without the generating machine's folders."""
    from nmu.report import REPO, shown

    assert shown(REPO / "results" / "quick" / "claims") == "results/quick/claims"
    assert shown(Path("/elsewhere/results")) == "/elsewhere/results"


def test_a_profile_that_is_not_one_and_list_elements_of_the_wrong_type_are_refused(tmp_path, monkeypatch):
    import pytest

    report = _notebook(tmp_path, monkeypatch, 'profile = "quick"\nexp_seeds = None  # type: list[int]|None  seeds\n'
                                              'fractions = [0.01, 0.1]\nout_dir = None\n')
    with pytest.raises(ValueError, match="unknown profile '../../escprof'"):
        report.start("demo", {"profile": "../../escprof"})
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "escprof").exists()
    for bad, match in [({"exp_seeds": ["natmu"]}, r"exp_seeds element='natmu' in \['natmu'\] must be int"),
                       ({"exp_seeds": [0, True]}, "exp_seeds element=True .* must be int, got bool"),
                       ({"fractions": [0.1, "abc", None]}, "fractions element='abc' .* must be float")]:
        with pytest.raises(report.NotebookParameterError, match=match):
            report.start("demo", {"profile": "smoke", **bad})
    assert report.start("demo", {"profile": "smoke", "exp_seeds": [0, 1], "fractions": [1, 0.5]}).parameters[
        "fractions"] == [1, 0.5]


def test_a_run_on_other_data_gets_a_folder_of_that_data_set(tmp_path, monkeypatch):
    """The default out_dir of a notebook run on data that is not its profile's names the data, so that an
    own-data run never replaces the profile's (committed) results; on the profile's own data it is as before."""
    report = _notebook(tmp_path, monkeypatch, 'profile = "quick"\ndataset = None  # type: str|None\n'
                                              'datasets = None  # type: list[str]|None\nout_dir = None\n')
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trees" / "flowers").mkdir(parents=True)

    def out(profile="quick", **chosen):
        return report.start("demo", {"profile": profile, **chosen}).out_dir.relative_to(tmp_path).as_posix()

    for own in ({}, {"dataset": "cifar10"}, {"datasets": ["cifar100", "cifar10"]}, {"dataset": None, "datasets": None}):
        assert out(**own) == "results/quick/demo", own
    assert out("smoke", dataset="digits") == out("smoke", datasets=["digits"]) == "results/smoke/demo"
    assert out(dataset="cifar100") == "results/quick/cifar100/demo"  # a profile's data, not this notebook's default
    flowers = "results/quick/flowers/demo"  # an image-folder tree: its folder's name
    assert out(dataset="trees/flowers") == out(dataset=str(tmp_path / "trees" / "flowers")) == flowers
    assert out(datasets=["cifar10"]) == "results/quick/cifar10/demo"  # a part of the default: not the whole table
    assert out(datasets=["cifar10", "./trees/flowers"]) == "results/quick/cifar10+flowers/demo"
    assert out(dataset="trees/flowers", out_dir="mine/x") == "mine/x"  # an out_dir given is kept as it is


def test_diagnosis_runs_that_differ_in_overrides_have_figures_that_say_so(tmp_path, monkeypatch):
    """The full-class diagnosis runs class_wise twice on experiment seed 100, with the presets' head
    re-initialisation and with it overridden: each figure's title says which, and which seed (one, so no
    interval); every saved figure carries its title in its PNG and PDF metadata."""
    from PIL import Image

    report = _notebook(tmp_path, monkeypatch, 'profile = "quick"\noverrides = {}\nout_dir = None\n')
    runs = pd.DataFrame([{"dataset": "cifar100", "split": "class rocket", "exp_seed": 100, "method": m, "hparams": "",
                          "acc_test": 40.0 + g, "acc_forget": g, "mia_entropy": 20.0, "forgetting_achieved": 1.0,
                          "avg_gap": g}
                         for m, g in (("retrain", 0.0), ("original", 30.0), ("natmu", 1.0), ("rl", 4.0))])
    head_kept = {"natmu": {"head_reinit": False}, "rl": {"head_reinit": False}}
    titles = {}
    for name, overrides in (("head_reinit", {}), ("head_kept", head_kept)):
        run = report.start("demo", {"profile": "quick", "overrides": overrides, "out_dir": str(tmp_path / name)})
        run.comparison(runs, ["acc_test", "avg_gap"], "class_wise", "cifar100 / cifar20: class-wise forgetting")
        run.finish()
        titles[name] = {f: Image.open(tmp_path / name / f"{f}.png").text["Title"]
                        for f in ("class_wise", "class_wise_seeds")}
        assert (tmp_path / name / "class_wise.pdf").read_bytes().count(b"class-wise forgetting") == 1
    for figure in ("class_wise", "class_wise_seeds"):
        reinit, kept = titles["head_reinit"][figure], titles["head_kept"][figure]
        assert "quick presets" in reinit and "head_reinit" not in reinit, reinit
        assert "quick presets with natmu head_reinit=False; rl head_reinit=False" in kept, kept
        assert all("experiment seed 100, no interval" in t and "95 % CI" not in t for t in (reinit, kept))
