"""bench/paper_check.py, the staged paper-scale GPU check, in its tiny configuration on the CPU (so
that it cannot rot between the sessions that have a GPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

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


def test_tiny_check_writes_every_stage_and_a_later_call_adds_what_the_budget_stopped(paper_check, tmp_path, capsys,
                                                                                      monkeypatch):
    out = tmp_path / "check"
    paper_check.main(["--tiny", "--out", str(out), "--budget-s", "0"])
    assert sorted(p.name for p in out.iterdir()) == [
        "environment.json", "models.csv", "models.md", "summary.md", "throughput.csv", "throughput.md",
        "unlearning.csv", "unlearning.md"]
    env = json.loads((out / "environment.json").read_text())
    assert env["config"]["profile"] == "smoke" and env["git_commit"] and env["precision"] in ("bf16", "fp32")
    throughput = pd.read_csv(out / "throughput.csv")
    assert list(throughput.arch) == ["tinycnn", "tinycnn"] and throughput.ratio.iloc[0] > 0
    # the planning row: TinyImageNet's shapes with the profile's recipe for it, and the projected training time
    plan = throughput.iloc[1]
    assert plan.data == "tinyimagenet (random images)" and plan.batch_size == 64 and plan.projected_epochs == 15
    assert plan.projected_train_s == pytest.approx(15 * 100_000 / plan.nmu_images_per_s)
    models = pd.read_csv(out / "models.csv")
    assert list(models.model) == ["original", "retrain"] and models.side_by_side.all()
    assert (models.seconds > 0).all() and models.train_images.tolist()[0] > models.train_images.tolist()[1]
    runs = pd.read_csv(out / "unlearning.csv")
    # a budget of 0 s stops stage 3 after the three methods that always run
    assert list(runs.method) == ["retrain", "original", "natmu", "rl", "salun"]
    assert runs.avg_gap.notna().all() and runs.avg_gap.iloc[0] == 0
    summary = (out / "summary.md").read_text()
    assert "natmu: Avg. Gap" in summary and "s/epoch" in summary and "x**" in summary
    assert f"**15 epochs of tinyimagenet would take about {plan.projected_train_s / 60:.1f} min** per model" in summary
    assert "reference code" not in summary  # the reference retrain row is CIFAR-10's: paper configuration only
    assert "this call's options and --stages 3 --methods ft,l1sparse," in capsys.readouterr().out

    # that later call: stage 3 only, into the same folder; the earlier methods' rows are kept (RL's rerun from
    # the cache), the earlier stages are still summarised; models trained without CUDA graphs (as a GPU
    # check's stage 0 may decide) are looked up without them
    models.assign(gpu='{"cudnn": "benchmark", "cuda_graphs": false}').to_csv(out / "models.csv", index=False)
    monkeypatch.setenv("NMU_CUDA_GRAPHS", "1")
    paper_check.main(["--tiny", "--out", str(out), "--stages", "3", "--methods", "ga,rl"])
    assert os.environ["NMU_CUDA_GRAPHS"] == "0"
    again = pd.read_csv(out / "unlearning.csv")
    assert list(again.method) == ["retrain", "original", "natmu", "salun", "ga", "rl"]
    assert again.set_index("method").avg_gap.drop("ga").to_dict() == runs.set_index("method").avg_gap.to_dict()
    summary = (out / "summary.md").read_text()
    assert "ga: Avg. Gap" in summary and "natmu: Avg. Gap" in summary and "s/epoch" in summary and "x**" in summary
    with pytest.raises(SystemExit, match="holds a check of .*'seed': 0.*not of .*'seed': 1"):
        paper_check.main(["--tiny", "--out", str(out), "--stages", "3", "--seed", "1", "--methods", "ga"])
    assert json.loads((out / "environment.json").read_text())["config"]["seed"] == 0


def test_earlier_rows_are_kept_only_beside_the_same_models(paper_check):
    refs = [{"method": "retrain", "acc_test": 90.0, "acc_retain": 99.0, "acc_forget": 89.0},
            {"method": "original", "acc_test": 91.0, "acc_retain": 99.5, "acc_forget": 99.9}]
    earlier = pd.DataFrame(refs + [{"method": "natmu", "acc_test": 89.0, "acc_retain": 98.0, "acc_forget": 90.0},
                                   {"method": "ga", "acc_test": 60.0, "acc_retain": 61.0, "acc_forget": 59.0}])
    assert [r["method"] for r in paper_check.kept_rows(earlier, refs, ["ga"])] == ["natmu"]
    other = [{**refs[0], "acc_test": 90.02}, refs[1]]  # a retrain trained again (another machine): other models
    assert paper_check.kept_rows(earlier, other, ["ga"]) == []
    assert paper_check.kept_rows(None, refs, ["ga"]) == []


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


def test_summary_projects_tinyimagenet_from_the_planning_rows_only(paper_check):
    env = {"config": {"profile": "paper", "dataset": "cifar100"}, "device": "GPU", "torch": "2", "cuda": "13",
           "gpu": None, "precision": "bf16", "git_commit": "abc"}
    plan = {"data": "tinyimagenet (random images)", "batch_size": 256, "steps": 150, "cuda_graph": True,
            "projected_epochs": 100.0, "reference_images_per_s": float("nan"), "ratio": float("nan")}
    throughput = pd.DataFrame([
        {"arch": "resnet18", "data": "cifar100", "batch_size": 128, "steps": 300, "reference_images_per_s": 10e3,
         "nmu_images_per_s": 30e3, "ratio": 3.0},
        {**plan, "arch": "resnet18", "nmu_images_per_s": 8e3, "projected_train_s": 1250.0},
        {**plan, "arch": "resnet34", "nmu_images_per_s": 3.7e3, "projected_train_s": 2700.0},
        {**plan, "arch": "resnet50", "failed": "OutOfMemoryError: CUDA out of memory"}])
    text = paper_check.summary(env, throughput, None, None, None)
    assert "- resnet18: nmu 30,000 images/s vs reference-style 10,000 images/s: **3.00x**" in text
    assert "nan" not in text and text.count("reference-style") == 1
    assert ("- resnet34, batch 256, CUDA graph: 3,700 images/s; **100 epochs of tinyimagenet would take about "
            "45.0 min** per model") in text
    assert "- resnet50: failed (OutOfMemoryError: CUDA out of memory)" in text


def test_cifar100_plans_tinyimagenet_with_resnet18_and_resnet34(paper_check, monkeypatch):
    """Stage 0 of ``--dataset cifar100`` times both ResNets on TinyImageNet's shapes with the paper's recipe
    for it (batch 256, crop padding 8, 200 classes) and projects 100 epochs of its 100,000 images; a model
    that fails there is recorded as failed and the check goes on."""
    seen = []

    def timed(model, images, labels, recipe, device, steps, warmup, precision):
        if len(seen) == 2:
            raise RuntimeError("CUDA out of memory")
        seen.append((sum(p.numel() for p in model.parameters()), model.head.out_features, tuple(images.shape[1:]),
                     int(labels.max()) < 200, recipe.batch_size, recipe.crop_padding, steps, len(images)))
        return 4000.0

    monkeypatch.setattr(paper_check, "nmu_images_per_second", timed)
    cfg = paper_check.config(False, "cifar100", seed=1)
    assert cfg.plan_archs == ("resnet18", "resnet34") and cfg.bench_archs[0] == "resnet18" and cfg.seed == 1
    assert paper_check.config(False, "cifar10", seed=0).plan_archs == ()
    rows = paper_check.plan_throughput(paper_check.replace(cfg, plan_steps=2, plan_warmup=1,
                                                           plan_archs=(*cfg.plan_archs, "vgg16_bn")),
                                       torch.device("cpu"))
    assert [r["arch"] for r in rows] == ["resnet18", "resnet34", "vgg16_bn"]
    assert rows[2]["failed"] == "RuntimeError: CUDA out of memory" and "projected_train_s" not in rows[2]
    assert seen[0][0] < seen[1][0]  # ResNet-34 is the larger model
    assert [s[1:] for s in seen] == [(200, (3, 64, 64), True, 256, 8, 2, 3 * 256)] * 2
    assert [(r["projected_epochs"], r["projected_train_s"]) for r in rows[:2]] == [(100, 100 * 100_000 / 4000.0)] * 2


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
    ([], {}, "usage: bench/gpu/device_check.sh check|notebook|figures"),
    (["check"], {}, "set NMU_GIT_COMMIT"),
    (["check"], {"NMU_GIT_COMMIT": "abc"}, "not carried: .paper-data/cifar10-jpeg.tar.xz .whl/"),
    (["check", "--dataset", "cifar100"], {"NMU_GIT_COMMIT": "abc"}, "not carried: .paper-data/cifar100-jpeg.tar.xz"),
    (["notebook"], {"NMU_GIT_COMMIT": "abc"}, ".whl-nb/ (papermill's wheels); run `make paper-carry`"),
    (["figures"], {"NMU_GIT_COMMIT": "abc"}, "not carried: .paper-data/cifar10-jpeg.tar.xz "
     ".paper-data/cifar100-jpeg.tar.xz .whl/ (submitit's wheel) .whl-nb/ (papermill's wheels)"),
    (["figures"], {"NMU_GIT_COMMIT": "abc", "PROFILE": "smoke"}, "not carried: .whl/ (submitit's wheel) .whl-nb/"),
    (["figures"], {"NMU_GIT_COMMIT": "abc", "PROFILE": "paper"}, ".paper-data/tiny-imagenet-200.tar.xz"),
    (["figures"], {"NMU_GIT_COMMIT": "abc", "PROFILE": "fast"}, "unknown PROFILE=fast (smoke, quick or paper)"),
])
def test_device_script_refuses_bad_calls_before_doing_anything(args, env, message, tmp_path):
    run = device_script(args, env, tmp_path)
    assert run.returncode == 2 and message in run.stderr
    assert list(tmp_path.iterdir()) == []


def device_script(args: list[str], env: dict[str, str], cwd, path: str | None = None) -> subprocess.CompletedProcess:
    """bench/gpu/device_check.sh run in ``cwd`` with only ``env`` (and ``PATH``, ``OUT`` under ``cwd``) set."""
    return subprocess.run(["bash", str(REPO / "bench" / "gpu" / "device_check.sh"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120,
                          env={"PATH": path or os.environ["PATH"], "OUT": str(cwd / "out"), **env})


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_device_figures_carry_one_archive_of_each_data_set_the_profile_reads(profile, tmp_path):
    from nmu.data import DATASETS
    from nmu.profiles import get_profile

    run = device_script(["figures"], {"NMU_GIT_COMMIT": "abc", "PROFILE": profile}, tmp_path)
    assert run.returncode == 2 and "not carried" in run.stderr
    named = re.findall(r"\.paper-data/(\S+)", run.stderr)
    archives = {d: {a for _, names in DATASETS[d].folders for a in names} for d in get_profile(profile).datasets()
                if DATASETS[d].folders}  # (digits: scikit-learn's)
    owners = [[d for d, names in archives.items() if a in names] for a in named]
    assert sorted(d for o in owners for d in o) == sorted(archives) and all(len(o) == 1 for o in owners)


def device_figures() -> list[str]:
    """The notebooks bench/gpu/device_check.sh's ``figures`` runs, in order (its FIGURES line)."""
    line = re.search(r"^FIGURES=\((.*)\)$", (REPO / "bench" / "gpu" / "device_check.sh").read_text(), re.M)
    return line.group(1).split()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_device_figures_are_make_figures_notebooks_in_makes_order(tmp_path):
    dry = subprocess.run(["make", "-C", str(REPO), "-n", "figures", "PROFILE=smoke", f"RESULTS={tmp_path / 'results'}",
                          f"PY={sys.executable}", f"NMU_DATA={tmp_path / 'data'}", "-o", ".venv/.installed"],
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    ordered = re.findall(r"-m papermill notebooks/(\w+)\.ipynb", dry.stdout)
    assert len(ordered) > 1 and device_figures() == ordered


def test_device_check_without_stage_0_adds_to_the_earlier_folder(tmp_path):
    """``check --stages 3 ...`` (a later call on the same machine) keeps pc/ and appends to its log; a check
    with stage 0 starts from an empty pc/. Install, unpacking and paper_check.py are stubbed."""
    (tmp_path / ".paper-data").mkdir()
    (tmp_path / ".paper-data" / "cifar10-jpeg.tar.xz").touch()
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "stub-0-py3-none-any.whl").touch()
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text('#!/bin/bash\n[ "$1 $2" = "-m pip" ] && exit 0\n'
                                   '[[ " $* " == *" -m nmu.archives "* ]] && exit 0\n'
                                   '[ "$1" = bench/paper_check.py ] && echo "paper_check.py $*" && exit 0\nexit 1\n')
    (shims / "python3").chmod(0o755)
    (tmp_path / "pc").mkdir()
    (tmp_path / "pc" / "unlearning.csv").write_text("the earlier call's\n")
    path = f"{shims}:{os.environ['PATH']}"
    for args, kept in [(["--seed", "1", "--stages", "3", "--methods", "ga"], True), (["--stages=3"], True),
                       (["--seed", "1"], False)]:
        run = device_script(["check", *args], {"NMU_GIT_COMMIT": "abc"}, tmp_path, path=path)
        assert run.returncode == 0, run.stderr[-2000:]
        with tarfile.open(tmp_path / "out" / "check.tgz") as tgz:
            assert ("pc/unlearning.csv" in tgz.getnames()) == kept, args
            log = tgz.extractfile("pc/log.txt").read().decode()
        assert log.count("paper_check.py --out pc --budget-s") == (2 if args == ["--stages=3"] else 1)
        assert log.splitlines()[-1].endswith(" ".join(args))


def test_device_figures_stop_at_the_budget_and_pack_what_ran(tmp_path):
    """``figures`` with no time left for its first notebook: that notebook stopped, the next not started,
    its folder packed with the timings and log, exit 3 (the install is stubbed: no wheels here)."""
    for name in ("notebooks", "nmu"):
        (tmp_path / name).symlink_to(REPO / name)
    for folder in (".whl", ".whl-nb"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "stub-0-py3-none-any.whl").touch()
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text(f'#!/bin/bash\n[ "$1 $2" = "-m pip" ] && exit 0\n'
                                   f'NMU_DATA={tmp_path / "data"} exec {sys.executable} "$@"\n')
    (shims / "python3").chmod(0o755)
    run = device_script(["figures"], {"NMU_GIT_COMMIT": "abc", "PROFILE": "smoke", "BUDGET_S": "3"}, tmp_path,
                        path=f"{shims}:{os.environ['PATH']}")
    assert run.returncode == 3 and "stopped at budget" in run.stderr, run.stderr[-2000:]
    with tarfile.open(tmp_path / "out" / "figures.tgz") as tgz:
        names = tgz.getnames()
        timings = tgz.extractfile("results/smoke-gpu/timings.md").read().decode()
    assert "results/smoke-gpu/log.txt" in names and not any(n.endswith("/sample_wise.ipynb") for n in names)
    rows = [line.split("|")[1:-1] for line in timings.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == [device_figures()[0], "all"] and rows[0][2].strip() in ("124", "137")
