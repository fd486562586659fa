"""Every notebook template is clean, and `make figures PROFILE=smoke` runs them all end to end via
papermill, writing every expected file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import committed, streams_run_together
from nmu.plan import plan

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = {  # files each notebook must write into its out_dir
    "quickstart": ["quickstart.png", "quickstart.pdf", "quickstart.csv", "quickstart.md"],
    "sample_wise": ["sample_wise.png", "sample_wise.pdf", "sample_wise_seeds.png", "runs.csv", "runs.md",
                    "summary.csv", "summary.md", "paired.csv", "paired.md"],
    "class_wise": ["class_wise.png", "class_wise.pdf", "class_wise_seeds.png", "runs.csv", "runs.md", "summary.csv",
                   "summary.md", "paired.csv"],
    "hybrid_gallery": ["masks.png", "masks.pdf", "hybrids.png", "hybrids.pdf"],
    "hardest": ["hardest.png", "hardest.pdf", "hardest_seeds.png", "hardest_classes_digits.png", "runs.csv",
                "summary.md", "paired.csv"],
    "over_forgetting": ["over_forgetting.png", "over_forgetting.pdf", "per_class_test_acc_change.csv",
                        "forget_prediction_shares.md"],
    "robustness": ["robustness.png", "robustness.pdf", "natmu_grid.csv", "common_grid.csv"],
    "efficiency": ["efficiency.png", "efficiency.pdf", "efficiency.csv", "mia_entropy_distributions.png"],
    "claims": ["claims.csv", "claims.md", "avg_gap_paired.csv", "avg_gap_paired.png", "over_forgetting_paired.csv",
               "run_time.csv", "claims_per_setting.csv", "forgetting_profile.csv", "robustness.csv"],
    "search": ["search.csv", "selected.md", "presets.yaml", "search.png"],
}
ONE_EXPERIMENT_FIGURES = ("quickstart/quickstart.png", "efficiency/efficiency.png",
                          "efficiency/mia_entropy_distributions.png", "over_forgetting/over_forgetting.png",
                          "robustness/robustness.png", "hybrid_gallery/hybrids.png",
                          "hardest/hardest_classes_digits.png")
"""The figures of one experiment (the smoke profile's digits, experiment seed 0)."""
NOT_FIGURES = ("search",)
"""Notebooks that `make figures` does not execute (`make search` runs the search)."""


def test_every_notebook_is_known():
    assert sorted(nb.stem for nb in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_template_is_clean_with_one_parameters_cell(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    assert "profile = " in "".join(tagged[0]["source"]) and "out_dir = " in "".join(tagged[0]["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter_nmu_checks(notebook):
    """papermill warns "Passed unknown parameter" for a parameter its parser misses (an annotation such as
    ``str | dict``): the types go in ``# type:`` comments, which both read."""
    from papermill.translators import PythonTranslator

    from nmu.report import declared_parameters

    cell = next(c for c in json.loads(notebook.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    seen = {p.name: p.inferred_type_name for p in PythonTranslator.inspect({"source": "".join(cell["source"])})}
    declared = declared_parameters(notebook)
    assert seen.keys() == declared.keys()
    assert {k: t for k, t in seen.items() if t != "None"} == {k: t for k, (_, t) in declared.items() if t}


def test_templates_name_the_kernel_the_venv_registers():
    """JupyterLab rewrites a kernelspec it does not know on opening (the template shows as modified)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    for notebook in [*NOTEBOOKS, REPO / "index.ipynb"]:
        kernel = json.loads(notebook.read_text())["metadata"]["kernelspec"]
        assert (kernel["name"], kernel["display_name"]) == ("python3", spec.display_name), notebook.name


def test_the_landing_page_links_every_template_and_every_executed_result():
    """`make lab` opens index.ipynb at the repository root: a link to each template and each executed notebook."""
    text = "".join("".join(c["source"]) for c in json.loads((REPO / "index.ipynb").read_text())["cells"])
    links = set(re.findall(r"\]\(([^)]+)\)", text))
    assert [link for link in links if not (REPO / link).exists()] == []
    executed = {str(p.relative_to(REPO)) for p in committed("results") if p.suffix == ".ipynb"}
    assert executed, "no executed notebook is committed under results/"
    assert {f"notebooks/{nb.name}" for nb in NOTEBOOKS} | executed <= links


def test_make_figures_smoke_writes_every_file_and_is_incremental(tmp_path):
    """``make figures PROFILE=smoke`` executes every notebook via papermill into the results folder,
    each writes its figures, tables and manifest, and a second ``make`` has nothing left to do; with
    ``EXECUTOR=local`` (runs as subprocess jobs) the notebooks write the same tables."""
    results, root, no_archives = tmp_path / "results", tmp_path / "data", tmp_path / "no-archives"
    no_archives.mkdir()
    cmd = ["make", "-C", str(REPO), "-j2", "figures", "PROFILE=smoke", f"RESULTS={results}", f"PY={sys.executable}",
           f"NMU_DATA={root}", f"SHARED_DATA={no_archives}",
           "-o", ".venv/.installed"]  # the test's interpreter already has everything installed
    # tiny models: one thread each, two notebooks at once; without pytest's marker the kernels forward
    # what the process writes to its stderr (the terminal's progress) into the notebook, as outside tests
    env = {**{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for notebook in (nb for nb in NOTEBOOKS if nb.stem not in NOT_FIGURES):
        out_dir = results / notebook.stem
        assert (results / notebook.name).is_file(), f"no executed copy of {notebook.name}"
        for name in EXPECTED[notebook.stem] + ["manifest.json"]:
            assert (out_dir / name).is_file(), f"{notebook.stem} did not write {name}"
        manifest = json.loads((out_dir / "manifest.json").read_text())
        assert manifest["parameters"]["profile"] == "smoke" and manifest["wall_seconds"] > 0
    assert not list(results.glob("*.part.ipynb"))
    assert "nmu: this machine:" in proc.stdout and f"of {len(NOTEBOOKS) - len(NOT_FIGURES)}, claims" in proc.stdout
    for executed in results.glob("*.ipynb"):  # progress went to the terminal; no path of this checkout
        assert "widget-view" not in executed.read_text() and str(REPO) not in executed.read_text(), executed.name
        assert not streams_run_together(json.loads(executed.read_text())), executed.name  # frames merged
    stamps = sorted(p.name for p in (results / ".done").iterdir() if not p.name.startswith("."))
    assert stamps == sorted(set(EXPECTED) - set(NOT_FIGURES))
    # every figure of one experiment names its data set and experiment seed (in its title, which each
    # PNG also carries as its Title metadata)
    from PIL import Image

    for png in ONE_EXPERIMENT_FIGURES:
        title = Image.open(results / png).text.get("Title", "")
        assert "digits" in title and "experiment seed 0" in title, f"{png}: {title!r}"
    assert "digits" in Image.open(results / "hybrid_gallery" / "masks.png").text["Title"]  # masks: no seed involved
    # `make plan` (nmu.plan) lists exactly the models and runs that were computed
    planned = {a for arts in plan("smoke").values() for a in arts}
    for kind in ("original", "retrain", "unlearn"):
        made = list((root / "checkpoints").glob(f"{kind}-*.pt"))
        assert len(made) == sum(a.kind == kind for a in planned), kind
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 0 and "papermill" not in again.stdout, "a second `make figures` executed notebooks"
    os.utime(results / ".done" / "hybrid_gallery", (0, 0))  # older than its template, as after an edit of it:
    one = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)  # one notebook redone, counted so
    assert one.returncode == 0 and "notebook 1 of 1, hybrid_gallery" in one.stdout, one.stdout[-2000:]

    # The same notebooks with EXECUTOR=local (every missing model and run a subprocess job, from an
    # empty data root) write the same tables; two notebooks, for time (about 75 s; sample_wise's 49 jobs
    # took 160 s): trained_models, and a grid setting's run_setting.
    jobs_results, jobs_data = tmp_path / "results-local", tmp_path / "data-local"
    local_notebooks = ("over_forgetting", "quickstart")
    local = ["make", "-C", str(REPO), "PROFILE=smoke", f"RESULTS={jobs_results}", f"PY={sys.executable}",
             f"NMU_DATA={jobs_data}", f"SHARED_DATA={no_archives}", "-o", ".venv/.installed",
             "EXECUTOR=local"] + [f"{jobs_results}/.done/{nb}" for nb in local_notebooks]
    proc = subprocess.run(local, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    batches = [sorted({p.parent.name.split("-", 1)[1] for p in batch.glob("*/*_result.pkl")})
               for batch in sorted(jobs_data.glob("jobs/*"))]
    assert batches == [["models", "runs"], ["runs"]], "the models and runs did not go through jobs"
    wall_times = re.compile(r"(seconds|rte_vs_retrain)(_ci)?")
    for nb in local_notebooks:
        for csv in sorted((results / nb).glob("*.csv")):
            inline, jobs = (pd.read_csv(d / nb / csv.name) for d in (results, jobs_results))
            drop = [c for c in inline.columns if wall_times.fullmatch(c)]
            pd.testing.assert_frame_equal(jobs.drop(columns=drop), inline.drop(columns=drop), obj=f"{nb}/{csv.name}")


def test_an_unknown_or_mistyped_papermill_parameter_stops_the_notebook(tmp_path):
    """A misspelt ``-p`` is not silently ignored: the notebook fails in its first cell, naming the valid ones."""
    import papermill

    for params, message in [({"fractoin": 0.2}, "unknown parameter(s) ['fractoin']"),
                            ({"fraction": "0.1"}, "fraction='0.1' must be float")]:
        with pytest.raises(papermill.PapermillExecutionError) as err:
            papermill.execute_notebook(str(REPO / "notebooks" / "quickstart.ipynb"), str(tmp_path / "out.ipynb"),
                                       parameters={"profile": "smoke", "out_dir": str(tmp_path / "out"), **params},
                                       progress_bar=False, log_output=False)
        assert message in str(err.value)
    assert not (tmp_path / "out").exists()
