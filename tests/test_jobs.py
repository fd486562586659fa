"""Runs as jobs (nmu.jobs, through submitit): the local executor gives the inline table, failures are
reported and leave the other results cached, a rerun submits nothing, and the SLURM submission is
what it should be (checked without a cluster)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import submitit
import torch
from submitit.slurm.slurm import _make_sbatch_string

import nmu.jobs as jobs
from nmu.experiment import Experiment
from nmu.artefacts import hyperparameters
from nmu.jobs import Executor, JobEnvironmentError, JobsFailed, missing, sbatch_script
from nmu.runs import run_setting, trained_models

WALL_TIMES = ["seconds", "rte_vs_retrain"]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Experiment:
    """The smoke experiment with its own, empty data root, computing through local subprocess jobs."""
    return Experiment("smoke", root=tmp_path_factory.mktemp("jobs-data"),
                      executor={"kind": "local", "max_concurrent": 2})


@pytest.fixture
def stages(monkeypatch) -> list[list[str]]:
    """The jobs each stage submitted: ``[[str(spec), ...], ...]``."""
    seen: list[list[str]] = []
    real = jobs._run_stage

    def spy(ex, specs, *args):
        seen.append([str(s) for s in specs])
        return real(ex, specs, *args)

    monkeypatch.setattr(jobs, "_run_stage", spy)
    return seen


def test_executor_options_are_parsed_and_checked():
    assert Executor.parse("inline") == Executor() == Executor.parse(None)
    assert Executor.parse("local").kind == "local"
    ex = Executor.parse({"kind": "slurm", "partition": "gpu", "gpus_per_job": 1, "cpus_per_job": 8, "timeout_min": 90,
                         "max_concurrent": 32, "setup": ["source .venv/bin/activate"]})
    assert (ex.partition, ex.gpus_per_job, ex.setup) == ("gpu", 1, ("source .venv/bin/activate",))
    assert Executor.parse("{kind: slurm, partition: gpu}").partition == "gpu"  # YAML text, e.g. from `papermill -p`
    for bad, match in [("cluster", "unknown executor kind"), ({"partition": "gpu"}, "unknown executor kind"),
                       ({"kind": "slurm", "gpus": 1}, r"unknown executor option\(s\) \['gpus'\]"),
                       ({"kind": "local", "partition": "gpu"}, "apply to kind 'slurm' only"),
                       ({"kind": "inline", "max_concurrent": 2}, "takes no options"),
                       ({"kind": "slurm", "gpus_per_job": -1}, "whole number >= 0"),
                       ({"kind": "local", "max_concurrent": 0}, "whole number >= 1"),
                       ({"kind": "slurm", "timeout_min": "1h"}, "positive finite number"),
                       ("{kind: slurm, timeout_min: .inf}", "positive finite number, got inf"),
                       ("{kind: slurm, mem_gb: .nan}", "positive finite number, got nan"),
                       ({"kind": "local", "poll_s": float("nan")}, "positive finite number, got nan"),
                       ({"kind": "slurm", "setup": "module load cuda"}, "list of shell lines"), (3, "must be")]:
        with pytest.raises((ValueError, TypeError), match=match):
            Executor.parse(bad)
    # jobs must compute on the notebook's device type, else their cache keys differ
    assert Executor.parse("local").resolved("cpu", 2).gpus_per_job == 0
    assert Executor.parse("slurm").resolved("cuda", 2).gpus_per_job == 1
    with pytest.raises(JobEnvironmentError, match="notebook computes on the CPU"):
        Executor.parse({"kind": "slurm", "gpus_per_job": 1}).resolved("cpu", 2)
    assert Executor.parse("local").resolved("cpu", 1).local_slots(1) != []


def test_local_jobs_make_the_inline_table_and_a_rerun_submits_nothing(smoke, local, stages):
    """The smoke grid through real subprocess jobs (same thread count, another data root) gives the
    inline table exactly, a diverged run included; then everything is cached and nothing is submitted."""
    assert torch.get_num_threads() == 1  # conftest: every job must use the notebook's thread count
    methods, overrides = ["natmu", "rl", "ft"], {"ft": {"lr": 1e30}}  # ft diverges: a failed row either way
    with pytest.warns(UserWarning, match="ft .* failed"):
        inline = run_setting(smoke, smoke.split("random", fraction=0.1), methods, overrides=overrides)
    with pytest.warns(UserWarning, match="ft .* failed"):
        table = run_setting(local, local.split("random", fraction=0.1), methods, overrides=overrides)
    assert [len(s) for s in stages] == [2, 4]  # original + retrain, then references + 3 runs
    assert stages[0][0].startswith("original") and stages[1][0].startswith("references")
    assert table.drop(columns=WALL_TIMES).equals(inline.drop(columns=WALL_TIMES))
    assert (table["seconds"].drop(index=[1, 4]) > 0).all()  # real runs, timed in the jobs
    logs = sorted(Path(local.root, "jobs").glob("*/*/*_log.out"))
    assert len(logs) == 6 and all("nmu job" in p.read_text() for p in logs)

    stages.clear()
    split = local.split("random", fraction=0.1)
    runs = [(m, 0, hyperparameters(local, m, "random")) for m in ("natmu", "rl")]
    assert missing(local, [(split, runs, True)]) == ([], [])
    again = run_setting(local, split, ["natmu", "rl"])
    models = trained_models(local, split, ["natmu", "rl"])
    assert stages == [] and set(models) == {"retrain", "original", "natmu", "rl"}
    assert again.drop(columns=WALL_TIMES).equals(table[table["method"] != "ft"].drop(columns=WALL_TIMES + ["failed"]))


def test_a_failing_job_is_reported_with_its_logs_and_the_others_complete(local, stages):
    split = local.split("random", fraction=0.1)
    with pytest.raises(JobsFailed) as caught:  # batch_size 0 passes the type checks, then the recipe refuses it
        run_setting(local, split, ["ft", "ga"], overrides={"ft": {"batch_size": 0}})
    report = str(caught.value)
    assert report.startswith("1 of 2 runs job(s) failed") and "running again submits only what is missing" in report
    assert "unlearn ft (seed 0, hparams {" in report and "'batch_size': 0" in report
    assert "ValueError: invalid recipe" in report
    stderr = Path(re.search(r"logs: (\S+)", report).group(1))
    assert stderr.is_file() and "invalid recipe" in stderr.read_text()
    ga = ("ga", 0, hyperparameters(local, "ga", "random"))
    assert missing(local, [(split, [ga], True)]) == ([], [])  # the other job's result is cached
    stages.clear()
    with pytest.raises(JobsFailed):  # a rerun submits only the failed one
        run_setting(local, split, ["ft", "ga"], overrides={"ft": {"batch_size": 0}})
    assert len(stages) == 1 and len(stages[0]) == 1 and stages[0][0].startswith("unlearn ft")


def test_a_job_that_would_key_the_cache_differently_refuses_to_run(local):
    """A job whose cache keys differ from the notebook's (here: another thread count) would compute
    results the notebook never reads: it stops first, naming the difference."""
    models, _ = missing(local, [(local.split("random", fraction=0.3), [], False)])
    spec = models[-1]  # the retrain of a split not trained yet
    assert spec.kind == "retrain" and spec.targets["retrain"]["threads"] == 1
    tampered = replace(spec, targets={"retrain": {**spec.targets["retrain"], "threads": 7}})
    with pytest.raises(JobEnvironmentError, match=r"retrain.threads: notebook 7, job 1"):
        jobs.run_job(tampered)
    assert not local.checkpoint("retrain", spec.split).exists()


def test_slurm_submission_without_a_cluster(tmp_path):
    """The sbatch file submitit would submit for an array of 30 jobs, with nmu's options."""
    options = {"kind": "slurm", "partition": "gpu", "account": "lab", "gpus_per_job": 1, "cpus_per_job": 8,
               "mem_gb": 32, "timeout_min": 240, "max_concurrent": 16, "setup": ["source .venv/bin/activate"]}
    text = sbatch_script(options, 30, folder=tmp_path)
    for line in ["#SBATCH --array=0-29%16", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --time=240",
                 "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --job-name=nmu-models",
                 f"#SBATCH --output={tmp_path}/%A_%a_0_log.out", "source .venv/bin/activate"]:
        assert line in text.splitlines(), line
    assert "-m submitit.core._submit" in text and "srun" in text
    one = sbatch_script("slurm", 1, folder=tmp_path, device_type="cpu", threads=2)
    assert "--array" not in one and "--cpus-per-task=2" in one and "gpus" not in one and "--time=240" in one
    extra = sbatch_script({"kind": "slurm", "slurm": {"qos": "high", "constraint": "a100"}}, 4, folder=tmp_path)
    assert "#SBATCH --qos=high" in extra and "#SBATCH --constraint=a100" in extra and "--array=0-3%4" in extra


class FakeSlurmExecutor(submitit.LocalExecutor):
    """Stands in for submitit's SlurmExecutor without a cluster: checks the parameters nmu gives by
    making the array's sbatch file from them, then runs the array's jobs as local subprocesses."""

    arrays: list[tuple[int, str]] = []

    def update_parameters(self, **params):
        self.slurm_params = params
        super().update_parameters(timeout_min=params["time"])

    def map_array(self, fn, specs):
        text = _make_sbatch_string(command="python -m submitit.core._submit", folder=self.folder,
                                   map_count=len(specs), **self.slurm_params)
        FakeSlurmExecutor.arrays.append((len(specs), text))
        return super().map_array(fn, specs)


def test_the_slurm_path_submits_one_array_per_stage(local, monkeypatch):
    monkeypatch.setattr(submitit, "SlurmExecutor", FakeSlurmExecutor)
    FakeSlurmExecutor.arrays.clear()
    exp = Experiment("smoke", root=local.root, executor={"kind": "slurm", "partition": "cpu", "poll_s": 0.5})
    exp.original()  # cached already when the tests before ran (inline here: Experiment.original is not a job)
    split = exp.split("random", fraction=0.2)
    table = run_setting(exp, split, ["rl"], seeds=[0, 1])
    assert [n for n, _ in FakeSlurmExecutor.arrays] == [1, 3]  # retrain (the original is cached); references + 2 runs
    sbatch = FakeSlurmExecutor.arrays[1][1].splitlines()
    assert "#SBATCH --array=0-2%3" in sbatch and "#SBATCH --partition=cpu" in sbatch
    assert "#SBATCH --cpus-per-task=1" in sbatch  # the notebook's thread count
    assert table["method"].tolist() == ["retrain", "original", "rl", "rl"] and table["avg_gap"].notna().all()


def test_a_job_that_loaded_what_another_job_computed_says_cached(smoke, monkeypatch, capsys):
    """Its status came from a look at the cache before it waited on the other job's lock."""
    split = smoke.split("random", fraction=0.25)
    models, _ = jobs.missing(smoke, [(split, [], False)])
    smoke.retrain(split)  # the other job, finishing while this one waits
    monkeypatch.setattr(jobs, "is_cached", lambda *args: False)  # what this job saw when it started
    assert jobs.run_job(models[0])["status"] == "cached"
    assert "nmu job cached" in capsys.readouterr().out


@pytest.mark.parametrize("n", ["-3", "0", "2.5"])
def test_the_sbatch_printer_wants_at_least_one_job(n, capsys):
    with pytest.raises(SystemExit):
        jobs.main(["--jobs", n])
    assert f"must be a whole number >= 1, got '{n}'" in capsys.readouterr().err
