"""bench/paper_check.py, the staged paper-scale GPU check, in its tiny configuration on the CPU (so
that it cannot rot between the sessions that have a GPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import REPO


@pytest.fixture(scope="module")
def paper_check():
    spec = importlib.util.spec_from_file_location("paper_check", REPO / "bench" / "paper_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_check"] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def test_tiny_check_writes_every_stage(paper_check, tmp_path):
    out = tmp_path / "check"
    paper_check.main(["--tiny", "--out", str(out), "--budget-s", "0"])
    assert sorted(p.name for p in out.iterdir()) == [
        "environment.json", "models.csv", "models.md", "summary.md", "throughput.csv", "throughput.md",
        "unlearning.csv", "unlearning.md"]
    env = json.loads((out / "environment.json").read_text())
    assert env["config"]["profile"] == "smoke" and env["git_commit"] and env["precision"] in ("bf16", "fp32")
    throughput = pd.read_csv(out / "throughput.csv")
    assert list(throughput.arch) == ["tinycnn"] and (throughput.ratio > 0).all()
    models = pd.read_csv(out / "models.csv")
    assert list(models.model) == ["original", "retrain"] and models.side_by_side.all()
    assert (models.seconds > 0).all() and models.train_images.tolist()[0] > models.train_images.tolist()[1]
    runs = pd.read_csv(out / "unlearning.csv")
    # a budget of 0 s stops stage 3 after the three methods that always run
    assert list(runs.method) == ["retrain", "original", "natmu", "rl", "salun"]
    assert runs.avg_gap.notna().all() and runs.avg_gap.iloc[0] == 0
    summary = (out / "summary.md").read_text()
    assert "natmu: Avg. Gap" in summary and "s/epoch" in summary and "x**" in summary
    assert "reference code" not in summary  # the reference retrain row is CIFAR-10's: paper configuration only


def test_a_failing_method_is_reported_and_the_others_run(paper_check, tmp_path, monkeypatch):
    real = paper_check.run_setting

    def flaky(exp, split, methods, *args, **kw):
        if "rl" in methods:
            raise RuntimeError("CUDA error: something")
        return real(exp, split, methods, *args, **kw)

    monkeypatch.setattr(paper_check, "run_setting", flaky)
    out = tmp_path / "check"
    paper_check.main(["--tiny", "--out", str(out), "--stages", "3", "--methods", "natmu,rl,salun,ga"])
    runs = pd.read_csv(out / "unlearning.csv")
    assert list(runs.method) == ["retrain", "original", "natmu", "rl", "salun", "ga"]
    assert runs.set_index("method").failed.loc["rl"] == "RuntimeError: CUDA error: something"
    assert runs.avg_gap.isna().tolist() == [False, False, False, True, False, False]
    assert "- rl: failed (RuntimeError: CUDA error: something)" in (out / "summary.md").read_text()


def test_summary_compares_the_retrain_row_with_the_reference_code(paper_check):
    env = {"config": {"profile": "paper", "dataset": "cifar10"}, "device": "GPU", "torch": "2", "cuda": "13",
           "gpu": {"cudnn": "benchmark", "cuda_graphs": True}, "precision": "bf16", "git_commit": "abc"}
    runs = pd.DataFrame([{"method": "retrain", "acc_test": 92.0, "acc_retain": 100.0, "acc_forget": 92.5,
                          "mia_entropy": 80.0, "avg_gap": 0.0, "seconds": 100.0, "rte_vs_retrain": 1.0},
                         {"method": "natmu", "acc_test": 91.0, "acc_retain": 99.0, "acc_forget": 90.0,
                          "mia_entropy": 78.0, "avg_gap": 1.5, "seconds": 5.0, "rte_vs_retrain": 0.05}])
    text = paper_check.summary(env, None, None, runs, paper_check.REFERENCE_RETRAIN["cifar10"])
    assert "| nmu - reference | -1.12 | +0.06 | -0.70 | -0.80 |" in text
    assert "- natmu: Avg. Gap **1.50**, 5.0 s = 5.0 % of the retrain's time" in text


def test_epochs_are_shortened_to_fit_the_budget(paper_check):
    from nmu.experiment import Experiment

    exp = Experiment("smoke", executor="inline")
    n = len(exp.data.train_labels)
    assert paper_check.train_epochs(exp, None, 10.0) == exp.recipe.epochs  # no throughput: no guess
    assert paper_check.train_epochs(exp, 1e9, 1e4) == exp.recipe.epochs  # fits
    # 3 epochs of both models fit in the time left after stage 3's reserve, at 1,000 images/s
    left = paper_check.STAGE3_RESERVE_S + 3 * 2 * n / 1000 + 0.1
    assert paper_check.train_epochs(exp, 1000.0, left) == 3
    assert paper_check.train_epochs(exp, 1000.0, 0.0) == 1
    assert paper_check.train_epochs(exp, 1000.0, left + 100, reserve_s=100 + paper_check.STAGE3_RESERVE_S) == 3


def test_training_speed_is_the_trained_models_on_the_path_it_takes(paper_check, monkeypatch):
    base, cpu, gpu = paper_check.STAGE3_RESERVE_S, torch.device("cpu"), torch.device("cuda")
    throughput = pd.DataFrame({"arch": ["vgg16_bn", "resnet18"], "nmu_images_per_s": [50e3, 30e3],
                               "nmu_eager_images_per_s": [16e3, 12e3]})
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "1")
    assert paper_check.training_speed(throughput, "vgg16_bn", gpu) == (50e3, base)  # graphed
    assert paper_check.training_speed(throughput, "resnet18", gpu) == pytest.approx((30e3, base * 16 / 12))  # eager 4/3 slower
    assert paper_check.training_speed(throughput, "vgg16_bn", cpu) == (16e3, base)  # no graphs on a CPU
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "0")  # e.g. turned off by stage 0's check: the eager speed
    assert paper_check.training_speed(throughput, "vgg16_bn", gpu) == (16e3, base)
    eager_only = throughput.drop(columns="nmu_eager_images_per_s")  # graphs failed in stage 0: all eager
    assert paper_check.training_speed(eager_only, "resnet18", gpu) == (30e3, base)
    assert paper_check.training_speed(throughput, "tinycnn", gpu) == (None, base)  # not timed in stage 0
    assert paper_check.training_speed(None, "vgg16_bn", gpu) == (None, base)


def test_graphed_training_is_never_side_by_side(paper_check, monkeypatch):
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "1")
    assert not paper_check.side_by_side(gpu, sequential=False)
    assert paper_check.side_by_side(cpu, sequential=False) and not paper_check.side_by_side(cpu, sequential=True)
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "0")
    assert paper_check.side_by_side(gpu, sequential=False)


def test_graph_disagreement_turns_graphs_off_beyond_rounding(paper_check):
    def row(diff=1e-5, eager=2.0, graphed=2.0001, adamw_diff=1e-5):
        return {"graph_check_param_rel_diff": diff, "graph_check_loss_eager": eager,
                "graph_check_loss_graphed": graphed, "graph_check_adamw_param_rel_diff": adamw_diff,
                "graph_check_adamw_loss_eager": 1.0, "graph_check_adamw_loss_graphed": 1.0}
    assert paper_check.graph_disagreement(row()) is None
    assert "sgd: parameters differ by 0.5" in paper_check.graph_disagreement(row(diff=0.5))
    assert "mean loss 2.5 graphed vs 2 eager" in paper_check.graph_disagreement(row(graphed=2.5))
    assert paper_check.graph_disagreement(row(adamw_diff=float("nan"))).startswith("adamw:")
    # every schedule of the check changes the learning rate at every one of its steps
    from nmu.train import lr_factor

    recipe = paper_check.Recipe(epochs=1, lr=0.05)
    for changes in paper_check.GRAPH_CHECK_RECIPES.values():
        r = recipe.with_(**changes)
        n = paper_check.GRAPH_CHECK_STEPS
        factors = [lr_factor(r, step, n, n) for step in range(n)]
        assert len(set(factors)) == n, changes


def test_shortened_models_are_trained_by_the_side_by_side_jobs(paper_check, tmp_path, monkeypatch):
    monkeypatch.setattr(paper_check, "train_epochs", lambda exp, ips, left, reserve_s: 2)
    out = tmp_path / "check"
    paper_check.main(["--tiny", "--out", str(out), "--stages", "12"])
    models = pd.read_csv(out / "models.csv")
    assert models.epochs.tolist() == [2, 2] and models.recipe_epochs.tolist() == [15, 15]
    assert "2 epochs (SHORTENED from the recipe's 15 to fit the time budget)" in (out / "summary.md").read_text()


def test_a_failure_of_the_side_by_side_jobs_falls_back_to_one_after_the_other(paper_check, tmp_path, monkeypatch):
    def no_jobs(exp, groups):
        raise ModuleNotFoundError("No module named 'submitit'")

    monkeypatch.setattr(paper_check.jobs, "compute_missing", no_jobs)
    out = tmp_path / "check"
    paper_check.main(["--tiny", "--out", str(out), "--stages", "12"])
    assert not pd.read_csv(out / "models.csv").side_by_side.any()


def test_cifar100_is_compared_with_its_own_reference_row(paper_check):
    env = {"config": {"profile": "paper", "dataset": "cifar100"}, "device": "GPU", "torch": "2", "cuda": "13",
           "gpu": None, "precision": "bf16", "git_commit": "abc"}
    runs = pd.DataFrame([{"method": "retrain", "acc_test": 75.0, "acc_retain": 99.9, "acc_forget": 76.0,
                          "mia_entropy": 50.0, "avg_gap": 0.0, "seconds": 100.0, "rte_vs_retrain": 1.0}])
    text = paper_check.summary(env, None, None, runs, paper_check.REFERENCE_RETRAIN["cifar100"])
    assert "retrain row (cifar100, random 10 %)" in text
    assert "| reference code | 75.43 | 99.95 | 75.92 | 53.49 |" in text


def test_dataset_is_the_paper_configurations_only(paper_check, tmp_path):
    with pytest.raises(SystemExit):
        paper_check.main(["--tiny", "--dataset", "cifar100", "--out", str(tmp_path)])


def test_device_wheels_pin_what_requirements_pin():
    """The wheels carried to an offline GPU machine must be the versions the project pins."""
    def pins(path):
        lines = (REPO / path).read_text().splitlines()
        return dict(line.lower().replace("_", "-").split("==") for line in lines if "==" in line)
    carried, required = pins("bench/gpu/notebook-wheels.txt"), pins("requirements.txt")
    assert {"papermill", "ipykernel", "nbformat"} <= carried.keys()
    assert {k: v for k, v in carried.items() if k in required} == {k: required[k] for k in carried if k in required}


@pytest.mark.parametrize("args, env, message", [
    ([], {}, "usage: bench/gpu/device_check.sh check|notebook"),
    (["check"], {}, "set NMU_GIT_COMMIT"),
    (["check"], {"NMU_GIT_COMMIT": "abc"}, "not carried: .paper-data/cifar10-jpeg.tar.xz .whl/"),
    (["check", "--dataset", "cifar100"], {"NMU_GIT_COMMIT": "abc"}, "not carried: .paper-data/cifar100-jpeg.tar.xz"),
    (["notebook"], {"NMU_GIT_COMMIT": "abc"}, ".whl-nb/ (papermill's wheels); run `make paper-carry`"),
])
def test_device_script_refuses_bad_calls_before_doing_anything(args, env, message, tmp_path):
    run = subprocess.run(["bash", str(REPO / "bench" / "gpu" / "device_check.sh"), *args], cwd=tmp_path, text=True,
                         capture_output=True, env={"PATH": os.environ["PATH"], "OUT": str(tmp_path / "out"), **env})
    assert run.returncode == 2 and message in run.stderr
    assert list(tmp_path.iterdir()) == []
