"""Paper scale on one GPU, in stages that each write their results as soon as they finish.

    make paper-check                                   # a GPU machine: CIFAR-10, VGG-16-BN, 100 epochs
    make paper-check ARGS="--seed 1"                   # the same with experiment seed 1 (the ledger's seeds)
    make paper-check ARGS="--dataset cifar100"         # CIFAR-100, ResNet-18 (results/paper/check/ too)
    python bench/paper_check.py --tiny --out /tmp/pc   # the same stages in seconds on a CPU (the tests run it)

0. ``environment.json`` (device, versions, cuDNN mode, CUDA graphs, commit; rewritten after stage 0, which
   may turn graphs off) and ``throughput.csv``: nmu's trainer against a reference-style pipeline
   (torchvision DataLoader + PIL transforms, fp32, worker processes), both in the run's cuDNN mode, on
   the trained model (CIFAR-100: and VGG-16-BN, to scale stage 3's reserve), batch 128
   (``bench/train_throughput.py``), and the ratio. CIFAR-100 also times nmu's trainer alone on
   TinyImageNet-shaped random images for ResNet-18 and ResNet-34 (:data:`PLAN_ARCHS`), with the time
   its recipe would take on TinyImageNet projected from that rate.
1-2. ``models.csv``: the original model and the retrained model of a random 10 % forget set, the
   profile's recipe (``paper``: 100 epochs). With CUDA graphs in force, one after the other in this
   process (two graphed processes only share the GPU by turns, and each model's seconds would double);
   without them, side by side as two ``local`` jobs (an eager trainer leaves the GPU half idle), or one
   after the other with ``--sequential``; seconds per epoch and accuracies.
3. ``unlearning.csv`` / ``.md``: NatMU, RL and SalUn, then the other methods while ``--budget-s``
   allows, with the profile's presets; every metric, Avg. Gap, run time as a fraction of the retrain's,
   and on a GPU whether the method's fine-tuning ran as a CUDA graph (``cuda_graph``).
``summary.md`` puts the numbers the paper is compared on in one page (:func:`summary`).

Models and runs go to the checkpoint cache (``$NMU_DATA``), so a rerun after a time-out resumes. A call
that leaves out a stage adds to the folder of an earlier call of the same configuration on the same
machine (:func:`earlier_check`): ``--stages 3 --methods ga`` after a budget stopped stage 3 before GA
keeps the earlier methods' rows, uses the models the earlier call trained (its epochs, its CUDA-graph
mode) and summarises every stage.
The cuDNN mode comes from ``NMU_CUDNN`` (:func:`nmu.train.cudnn_mode`; ``make paper-check`` sets
``benchmark``), CUDA graphs from ``NMU_CUDA_GRAPHS`` (:func:`nmu.train.cuda_graphs`, on by default);
both are recorded. On a GPU stage 0 also times nmu's trainer without CUDA graphs and checks that the
graphed and eager steps train the same model, with SGD and with AdamW (:func:`graph_agreement`); if they
do not, the run goes on without graphs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import nmu_images_per_second, reference_images_per_second  # noqa: E402

from nmu import jobs  # noqa: E402
from nmu.data import DATASETS, load_dataset  # noqa: E402
from nmu.experiment import Experiment  # noqa: E402
from nmu.models import build_model  # noqa: E402
from nmu.profiles import get_profile  # noqa: E402
from nmu.report import environment, save_table  # noqa: E402
from nmu.runs import run_setting  # noqa: E402
from nmu.storage import atomic_write  # noqa: E402
from nmu.train import (Recipe, accuracy, cuda_graphs, default_device, fit, gpu_mode, resolve_precision,  # noqa: E402
                       set_cudnn)

REFERENCE_RETRAIN = {
    "cifar10": {"acc_test": 93.12, "acc_retain": 99.94, "acc_forget": 93.20, "mia_entropy": 80.80},
    "cifar100": {"acc_test": 75.43, "acc_retain": 99.95, "acc_forget": 75.92, "mia_entropy": 53.49},
}
"""The reference code's retrain rows, random 10 % (CIFAR-10 VGG-16, CIFAR-100 ResNet-18; docs/method.md,
"Reference numbers"); its MIA is its own entropy attack, which differs from nmu's (Song & Mittal's)."""
FIRST_METHODS = ("natmu", "rl", "salun")
MORE_METHODS = ("ft", "l1sparse", "badteacher", "scrub", "bs", "ssd", "ga")


@dataclass(frozen=True)
class Config:
    profile: str
    dataset: str
    fraction: float
    bench_archs: tuple[str, ...]
    bench_steps: int
    bench_warmup: int
    seed: int = 0
    """The experiment seed (weights, data order, forget set: :class:`nmu.experiment.Experiment`)."""
    plan_archs: tuple[str, ...] = ()
    """Models stage 0 also times on :data:`PLAN_DATASET`-shaped random images (nmu's trainer only)."""
    plan_steps: int = 0
    plan_warmup: int = 0


PAPER = Config("paper", "cifar10", 0.1, ("vgg16_bn",), bench_steps=300, bench_warmup=30, plan_steps=150,
               plan_warmup=15)
"""CIFAR-10 with the paper's VGG-16-BN; ``--dataset cifar100`` trains the paper's ResNet-18 on CIFAR-100
(:data:`BENCH_ARCHS`, :data:`PLAN_ARCHS`)."""
BENCH_ARCHS = {"cifar10": ("vgg16_bn",), "cifar100": ("resnet18", "vgg16_bn")}
"""Stage 0's models per dataset: the trained one, and VGG-16-BN, whose eager speed scales stage 3's reserve."""
PLAN_DATASET = "tinyimagenet"
PLAN_ARCHS = {"cifar10": (), "cifar100": ("resnet18", "resnet34")}
"""Stage 0's models per dataset timed on :data:`PLAN_DATASET`'s shapes (64 px, 200 classes, the profile's
recipe for it: paper: batch 256), so that its cost can be planned (the paper trains ResNet-34 on it)."""
TINY = Config("smoke", "digits", 0.1, ("tinycnn",), bench_steps=3, bench_warmup=1, plan_archs=("tinycnn",),
              plan_steps=2, plan_warmup=1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, body: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(body, indent=2, default=str) + "\n"))


def stage_environment(cfg: Config, out: Path, device: torch.device) -> dict:
    """Stage 0a: what runs where, written first so that even a failed run says it."""
    body = {"config": cfg.__dict__, "gpu": None, **environment(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "precision": resolve_precision("auto", device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        body |= {"gpu_name": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "multiprocessors": props.multi_processor_count}
    write_json(out / "environment.json", body)
    log(f"environment: {body['device']}, torch {torch.__version__}, GPU mode {body['gpu']}, commit {body['git_commit']}")
    return body


def stage_throughput(cfg: Config, out: Path, device: torch.device, workers: int) -> pd.DataFrame:
    """Stage 0b: images/s of nmu's trainer and of the reference-style pipeline on the same data."""
    data = load_dataset(cfg.dataset)
    recipe = Recipe(epochs=1, lr=0.05, batch_size=128, weight_decay=5e-4, schedule="constant",
                    crop_padding=get_profile(cfg.profile).recipe_for(cfg.dataset).crop_padding)
    need = (cfg.bench_warmup + cfg.bench_steps) * recipe.batch_size
    reps = -(-need // len(data.train_labels))
    images, labels = data.train_images.repeat(reps, 1, 1, 1)[:need], data.train_labels.repeat(reps)[:need]
    rows = []
    for arch in cfg.bench_archs:
        def model():
            return build_model(arch, data.num_classes, data.mean, data.std, seed=0)
        start = time.perf_counter()
        set_cudnn(device)  # the run's cuDNN mode for the reference too (fit sets it for nmu's trainer)
        try:
            ref = reference_images_per_second(model(), images, labels, data.mean, data.std, recipe, device,
                                              cfg.bench_steps, cfg.bench_warmup, workers)
        except Exception:  # noqa: BLE001 -- e.g. worker processes refused: the training still matters more
            log(f"the reference-style pipeline failed; its throughput is missing: {traceback.format_exc()}")
            ref = float("nan")
        precision = resolve_precision("auto", device)
        try:
            ours = nmu_images_per_second(model(), images, labels, recipe, device, cfg.bench_steps, cfg.bench_warmup,
                                         precision)
        except Exception:  # noqa: BLE001 -- a GPU whose graphs fail can still train eagerly: say so, go on
            if device.type != "cuda" or not cuda_graphs():
                raise
            log(f"training with CUDA graphs failed; this run goes on without them: {traceback.format_exc()}")
            os.environ["NMU_CUDA_GRAPHS"] = "0"
            ours = nmu_images_per_second(model(), images, labels, recipe, device, cfg.bench_steps, cfg.bench_warmup,
                                         precision)
        row = {"arch": arch, "batch_size": recipe.batch_size, "steps": cfg.bench_steps,
               "reference_images_per_s": ref, "nmu_images_per_s": ours, "ratio": ours / ref}
        if device.type == "cuda" and cuda_graphs():
            with environ(NMU_CUDA_GRAPHS="0"):
                row["nmu_eager_images_per_s"] = nmu_images_per_second(
                    model(), images, labels, recipe, device, cfg.bench_steps, cfg.bench_warmup, precision)
            try:
                row |= graph_agreement(model, images, labels, recipe, device)
                problem = graph_disagreement(row)
            except Exception:  # noqa: BLE001 -- say so, and train the models without graphs
                problem = traceback.format_exc()
            set_cudnn(device)  # (the check ran deterministic)
            if problem:
                log(f"CUDA graphs failed their check; the rest of this run trains without them: {problem}")
                os.environ["NMU_CUDA_GRAPHS"] = "0"
        rows.append({**row, "data": cfg.dataset, "reference_workers": workers, "seconds": time.perf_counter() - start})
        log(f"throughput {arch}: " + ", ".join(f"{k} {v:,.4g}" for k, v in row.items() if isinstance(v, float)))
    rows += plan_throughput(cfg, device)
    table = pd.DataFrame(rows)
    save_table(table, out, "throughput")
    return table


def plan_throughput(cfg: Config, device: torch.device) -> list[dict]:
    """Stage 0c: images/s of nmu's trainer (on the path in force: graphed where stage 0 left CUDA graphs
    on) for each of ``cfg.plan_archs`` on random images of :data:`PLAN_DATASET`'s shape and classes, with
    the profile's recipe for it (its batch size and crop padding), and the seconds that recipe's epochs
    over the data set's training images would take at that rate (one model, a projection). A model that
    fails (e.g. out of memory) is recorded as failed, and the run goes on."""
    if not cfg.plan_archs:
        return []
    known = DATASETS[PLAN_DATASET]
    recipe = get_profile(cfg.profile).recipe_for(PLAN_DATASET)
    timed = recipe.with_(epochs=1, schedule="constant", warmup_epochs=0.0)
    n = (cfg.plan_warmup + cfg.plan_steps) * timed.batch_size
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *known.shape), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, known.classes, (n,), generator=g)
    train_images = known.classes * known.train_per_class
    rows = []
    for arch in cfg.plan_archs:
        start = time.perf_counter()
        row = {"arch": arch, "data": f"{PLAN_DATASET} (random images)", "batch_size": timed.batch_size,
               "steps": cfg.plan_steps, "cuda_graph": device.type == "cuda" and cuda_graphs(),
               "projected_epochs": recipe.epochs}
        try:
            model = build_model(arch, known.classes, *known.normalization, seed=0)
            ips = nmu_images_per_second(model, images, labels, timed, device, cfg.plan_steps, cfg.plan_warmup,
                                        resolve_precision("auto", device))
        except Exception as err:  # noqa: BLE001 -- planning must not cost the run its training
            log(f"timing {arch} on {PLAN_DATASET}'s shapes failed: {traceback.format_exc()}")
            rows.append({**row, "failed": f"{type(err).__name__}: {err}", "seconds": time.perf_counter() - start})
            continue
        rows.append({**row, "nmu_images_per_s": ips, "projected_train_s": recipe.epochs * train_images / ips,
                     "seconds": time.perf_counter() - start})
        log(f"throughput {arch} on {PLAN_DATASET}'s shapes: {ips:,.4g} images/s; {recipe.epochs} epochs of "
            f"{train_images:,} images: about {rows[-1]['projected_train_s'] / 60:.1f} min")
    return rows


@contextmanager
def environ(**values: str):
    """Set environment variables for the ``with`` block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


GRAPH_CHECK_STEPS = 20
GRAPH_CHECK_RECIPES = {"sgd": {"warmup_epochs": 1.0},
                       "adamw": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 2e-3, "schedule": "cosine"}}
"""The two captured optimisers, each with a learning rate that changes at every step (SGD's warm-up
ramp over the 20 steps; AdamW's per-step cosine, as NatMU's fine-tuning), so a capture that froze
the learning rate or an optimiser state would show."""
GRAPH_CHECK_TOLERANCE = 1e-2
"""Largest relative difference (parameters, mean loss) between graphed and eager training that
:func:`graph_disagreement` accepts: rounding differs, a wrong update differs by far more."""


def graph_agreement(model_fn, images: torch.Tensor, labels: torch.Tensor, recipe: Recipe,
                    device: torch.device) -> dict[str, float]:
    """The same :data:`GRAPH_CHECK_STEPS` steps (same initial weights, batches and augmentation,
    deterministic cuDNN), eager and as a CUDA graph, for each optimiser of :data:`GRAPH_CHECK_RECIPES`:
    the relative difference of all parameters (as one vector) and the mean training loss of each
    (they agree up to floating-point rounding, which training amplifies, not bitwise)."""
    n = GRAPH_CHECK_STEPS * recipe.batch_size
    row = {}
    for opt, changes in GRAPH_CHECK_RECIPES.items():
        models, losses = {}, {}
        for graphs in ("0", "1"):
            with environ(NMU_CUDA_GRAPHS=graphs, NMU_CUDNN="deterministic"):
                models[graphs] = model_fn()
                result = fit(models[graphs], images[:n], labels[:n], recipe.with_(**changes), seed=0,
                             device=device, progress=False, record_losses=True)
            if result.graphed != (graphs == "1"):
                raise RuntimeError(f"NMU_CUDA_GRAPHS={graphs} but fit ran {'graphed' if result.graphed else 'eager'}")
            losses[graphs] = float(result.sample_loss.mean())
        eager, graphed = (torch.cat([p.detach().float().flatten() for p in models[g].parameters()]) for g in "01")
        suffix = "" if opt == "sgd" else f"_{opt}"
        row |= {f"graph_check{suffix}_param_rel_diff": float((graphed - eager).norm() / eager.norm()),
                f"graph_check{suffix}_loss_eager": losses["0"], f"graph_check{suffix}_loss_graphed": losses["1"]}
    return row


def graph_disagreement(row: dict[str, float]) -> str | None:
    """What in :func:`graph_agreement`'s ``row`` exceeds :data:`GRAPH_CHECK_TOLERANCE` (None: nothing)."""
    problems = []
    for suffix in ("", "_adamw"):
        diff = row[f"graph_check{suffix}_param_rel_diff"]
        eager, graphed = row[f"graph_check{suffix}_loss_eager"], row[f"graph_check{suffix}_loss_graphed"]
        loss_diff = abs(graphed - eager) / max(abs(eager), 1e-12)
        if not diff <= GRAPH_CHECK_TOLERANCE or not loss_diff <= GRAPH_CHECK_TOLERANCE:
            problems.append(f"{suffix.strip('_') or 'sgd'}: parameters differ by {diff:.3g} (relative), "
                            f"mean loss {graphed:.4g} graphed vs {eager:.4g} eager")
    return "; ".join(problems) or None


SIDE_BY_SIDE_SPEEDUP = 1.9
"""Images/s of two eager trainings side by side on one GPU over one alone (measured in check-1: 15.7k
alone, 15.2k + 14.6k side by side: the eager trainer is host-bound). Graphed training is not run side
by side (:func:`side_by_side`)."""
STAGE3_RESERVE_S = 100.0
"""Time kept for stage 3 (NatMU, RL, SalUn and their evaluation; 88 s for VGG-16-BN in check-1) when
stages 1-2 are fitted to a budget, for VGG-16-BN: :func:`training_speed` scales it to other models."""


def side_by_side(device: torch.device, sequential: bool) -> bool:
    """Whether stages 1-2 train the two models as two jobs at once: only for an eager trainer (with CUDA
    graphs one process keeps the GPU busy, and two would share it by turns) and unless ``--sequential``."""
    return not sequential and not (device.type == "cuda" and cuda_graphs())


def training_speed(throughput: pd.DataFrame | None, arch: str, device: torch.device) -> tuple[float | None, float]:
    """Stage 0's images/s of nmu's trainer on ``arch`` on the path stages 1-2 will take (graphed where
    CUDA graphs are in force, else eager; None if stage 0 did not time it), and the time to keep for
    stage 3: :data:`STAGE3_RESERVE_S`, times how much slower than VGG-16-BN ``arch`` trains eagerly (as
    most unlearning methods do), where stage 0 measured both."""
    if throughput is None or arch not in set(throughput.arch):
        return None, STAGE3_RESERVE_S
    rows = throughput.set_index("arch")
    eager = rows.get("nmu_eager_images_per_s", pd.Series(dtype=float)).dropna()
    slower = eager["vgg16_bn"] / eager[arch] if {"vgg16_bn", arch} <= set(eager.index) else 1.0
    graphed = device.type == "cuda" and cuda_graphs()
    speed = rows.loc[arch, "nmu_images_per_s"] if graphed or arch not in eager.index else eager[arch]
    return float(speed), STAGE3_RESERVE_S * max(1.0, slower)


def train_epochs(exp: Experiment, ips: float | None, seconds_left: float, reserve_s: float = STAGE3_RESERVE_S) -> int:
    """The recipe's epochs, or fewer if stage 0's throughput ``ips`` (images/s of one training alone on
    the path it takes) says that both trainings would not end ``reserve_s`` before the budget does (at
    least 1)."""
    epochs = exp.recipe.epochs
    if not ips or seconds_left == float("inf"):
        return epochs
    speed = ips * (1 if exp.executor == "inline" else SIDE_BY_SIDE_SPEEDUP)
    images_per_epoch = 2 * len(exp.data.train_labels)  # original + retrain (a little less)
    fits = int((seconds_left - reserve_s) * speed / images_per_epoch)
    return max(1, min(epochs, fits))


def stage_models(exp: Experiment, split, out: Path, ips: float | None, recipe_epochs: int) -> pd.DataFrame:
    """Stages 1-2: the original and the retrained model (cached), trained as jobs side by side where
    ``exp.executor`` is ``local``, else one after the other in this process. ``recipe_epochs``: the
    profile's, recorded beside the epochs trained (fewer where :func:`train_epochs` shortened them)."""
    sequential = exp.executor == "inline"
    epochs = exp.recipe.epochs
    if ips:
        speed = ips * (1 if sequential else SIDE_BY_SIDE_SPEEDUP)
        eta = 2 * epochs * len(exp.data.train_labels) / speed
        log(f"training original and retrain, {epochs} epochs each, {'one after the other' if sequential else 'side by side'}: "
            f"ETA about {eta / 60:.1f} min (stage 0's nmu throughput)")
    start = time.perf_counter()
    if exp.executor != "inline":
        jobs.compute_missing(exp, [(split, [], False)])
    rows = []
    (retain_x, retain_y), (forget_x, forget_y) = split.retain_set(exp.data), split.forget_set(exp.data)
    for kind in ("original", "retrain"):
        trained = exp.original() if kind == "original" else exp.retrain(split)
        images = len(exp.data.train_labels) if kind == "original" else len(split.retain)
        rows.append({"model": kind, "arch": exp.arch, "epochs": epochs, "recipe_epochs": recipe_epochs,
                     "train_images": images, "gpu": json.dumps(gpu_mode(exp.device)),
                     "side_by_side": not sequential, "seconds": trained.seconds,
                     "seconds_per_epoch": trained.seconds / max(epochs, 1), "was_cached": trained.was_cached,
                     "acc_test": accuracy(trained.model, exp.data.test_images, exp.data.test_labels),
                     "acc_retain": accuracy(trained.model, retain_x, retain_y),
                     "acc_forget": accuracy(trained.model, forget_x, forget_y)})
        log(f"{kind}: {trained.seconds:.0f} s ({trained.seconds / max(epochs, 1):.2f} s/epoch), "
            f"test {rows[-1]['acc_test']:.2f} %, forget {rows[-1]['acc_forget']:.2f} %")
    log(f"stages 1-2 took {time.perf_counter() - start:.0f} s")
    table = pd.DataFrame(rows)
    save_table(table, out, "models")
    return table


def stage_unlearning(exp: Experiment, split, out: Path, methods: list[str], deadline: float,
                     earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stage 3: the reference rows, then each method's run (:func:`nmu.runs.run_setting`, one method at a
    time) while the time left allows one more (as long as the slowest so far, with half again as margin);
    a method that raises is recorded as failed and the others go on. ``earlier``: an earlier call's table
    in ``out``, whose rows of other methods are kept (:func:`kept_rows`)."""
    records, slowest = run_setting(exp, split, []).to_dict("records"), 0.0
    records += kept_rows(earlier, records, methods)
    for i, method in enumerate(methods):
        left = deadline - time.time()
        if method not in FIRST_METHODS and left < 1.5 * slowest:
            log(f"stopping before {method}: {left:.0f} s left, a run took up to {slowest:.0f} s; the rest is added "
                f"to this folder by a later call on this machine with this call's options and --stages 3 "
                f"--methods {','.join(methods[i:])}")
            break
        start = time.perf_counter()
        try:
            table = run_setting(exp, split, [method])
        except Exception as err:  # noqa: BLE001 -- one method's failure must not lose the others' rows
            log(f"{method} failed: {traceback.format_exc()}")
            records.append({"method": method, "failed": f"{type(err).__name__}: {err}", "avg_gap": float("nan")})
            continue
        slowest = max(slowest, time.perf_counter() - start)
        rec = table[table["method"] == method].to_dict("records")[0]
        records.append(rec)
        log(f"{method}: Avg. Gap {rec['avg_gap']:.2f}, {rec['seconds']:.1f} s "
            f"({100 * rec['rte_vs_retrain']:.1f} % of the retrain's time)")
        save_unlearning(records, out)
    save_unlearning(records, out)
    return pd.DataFrame(records)


def kept_rows(earlier: pd.DataFrame | None, references: list[dict], methods: list[str]) -> list[dict]:
    """The rows of ``earlier`` (an earlier call's ``unlearning.csv``) for methods other than ``methods``,
    if its reference rows are ``references`` (the same models, from the cache); else none, said."""
    if earlier is None:
        return []
    before = earlier.set_index("method")
    same = all(r["method"] in before.index and math.isclose(before.loc[r["method"], k], r[k], rel_tol=1e-9)
               for r in references for k in ("acc_test", "acc_retain", "acc_forget"))
    if not same:
        log("the earlier call's unlearning rows were measured against other models: they are not kept")
        return []
    kept = earlier[~earlier["method"].isin(["retrain", "original", *methods])]
    log(f"kept from the earlier call: {', '.join(kept['method']) or 'no method'}")
    return kept.to_dict("records")


SAME_CHECK = ("profile", "dataset", "fraction", "seed")
"""What an earlier call in the same folder must share with this one for its tables to be used."""


def earlier_check(out: Path, cfg: Config, stages: str) -> dict[str, pd.DataFrame]:
    """The tables an earlier call of this check left in ``out``, when this call leaves out a stage
    (``--stages 3 --methods ga`` after a budget stopped stage 3 before GA): stages not run now are
    summarised from them, and stage 3 uses the models of ``models``. Refused when ``out`` holds another
    configuration."""
    if set("0123") <= set(stages) or not (out / "environment.json").is_file():
        return {}
    before = json.loads((out / "environment.json").read_text())["config"]
    mine, theirs = ({k: c.get(k) for k in SAME_CHECK} for c in (cfg.__dict__, before))
    if mine != theirs:
        raise SystemExit(f"{out} holds a check of {theirs}, not of {mine}: give another --out, or run every stage")
    return {name: pd.read_csv(out / f"{name}.csv") for name in ("throughput", "models", "unlearning")
            if (out / f"{name}.csv").is_file()}


def save_unlearning(records: list[dict], out: Path) -> None:
    columns = ["method", "failed", "hparams", "seconds", "rte_vs_retrain", "cuda_graph", "avg_gap", "acc_test",
               "acc_retain", "acc_forget", "mia_entropy", "mia_svc_forget_efficacy", "mia_loss_attack_acc",
               "kl_forget", "kl_test"]
    table = pd.DataFrame(records)
    save_table(table[[c for c in columns if c in table]], out, "unlearning")


def summary(env: dict, throughput: pd.DataFrame | None, models: pd.DataFrame | None,
            runs: pd.DataFrame | None, reference: dict[str, float] | None) -> str:
    """The one-page report: throughput ratio, seconds per epoch, the retrained model against the
    reference code's retrain row, NatMU vs RL vs SalUn, NatMU's time as a fraction of the retrain's."""
    lines = [f"# Paper-scale check: {env['config']['profile']} profile, {env['config']['dataset']}", "",
             f"- device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); GPU mode: {env['gpu']}; "
             f"precision {env['precision']}; commit {env['git_commit']}", ""]
    if throughput is not None:
        lines += ["## Trainer throughput (batch 128)", ""]
        for r in throughput[throughput["data"] == env["config"]["dataset"]].to_dict("records"):
            lines.append(f"- {r['arch']}: nmu {r['nmu_images_per_s']:,.0f} images/s vs reference-style "
                         f"{r['reference_images_per_s']:,.0f} images/s: **{r['ratio']:.2f}x**")
            if pd.notna(r.get("nmu_eager_images_per_s", float("nan"))):
                lines.append(f"  - without CUDA graphs nmu makes {r['nmu_eager_images_per_s']:,.0f} images/s "
                             f"({r['nmu_eager_images_per_s'] / r['reference_images_per_s']:.2f}x)")
            for opt, c in (("SGD", "graph_check"), ("AdamW", "graph_check_adamw")):
                if pd.notna(r.get(f"{c}_param_rel_diff", float("nan"))):
                    lines.append(f"  - after {GRAPH_CHECK_STEPS} identical {opt} steps, graphed and eager parameters "
                                 f"differ by {r[f'{c}_param_rel_diff']:.2g} (relative); mean training loss "
                                 f"{r[f'{c}_loss_graphed']:.4f} graphed vs {r[f'{c}_loss_eager']:.4f} eager")
        lines.append("")
        plan = throughput[throughput["data"] != env["config"]["dataset"]]
        if len(plan):
            lines += [f"## Planning {PLAN_DATASET} (random images of its shape: nmu's trainer alone)", ""]
            lines += [f"- {r['arch']}: failed ({r['failed']})" if isinstance(r.get("failed"), str) else
                      f"- {r['arch']}, batch {r['batch_size']}, {'CUDA graph' if r['cuda_graph'] else 'eager'}: "
                      f"{r['nmu_images_per_s']:,.0f} images/s; **{r['projected_epochs']:.0f} epochs of "
                      f"{PLAN_DATASET} would take about {r['projected_train_s'] / 60:.1f} min** per model "
                      f"(projected from {r['steps']} steps, not a measured run)" for r in plan.to_dict("records")]
            lines.append("")
    if models is not None:
        lines += ["## Training", ""]
        short = " (SHORTENED from the recipe's {} to fit the time budget)"
        lines += [f"- {r.model}: {r.epochs} epochs{short.format(r.recipe_epochs) if r.epochs < r.recipe_epochs else ''}"
                  f" in {r.seconds:.0f} s (**{r.seconds_per_epoch:.2f} s/epoch**"
                  f"{', side by side with the other model' if r.side_by_side else ''}); test {r.acc_test:.2f} %, "
                  f"retain {r.acc_retain:.2f} %, forget {r.acc_forget:.2f} %" for r in models.itertuples()] + [""]
    if runs is not None and len(runs):
        by = runs.set_index("method")
        gold = by.loc["retrain"]
        if reference is not None:
            lines += [f"## The retrained model against the reference code's retrain row ({env['config']['dataset']}, "
                      "random 10 %)",
                      "", "| | Acc D_t | Acc D_r | Acc D_f | MIA (entropy) |", "|---|---|---|---|---|",
                      "| reference code | " + " | ".join(f"{v:.2f}" for v in reference.values()) + " |",
                      "| nmu | " + " | ".join(f"{gold[k]:.2f}" for k in reference) + " |",
                      "| nmu - reference | " + " | ".join(f"{gold[k] - v:+.2f}" for k, v in reference.items()) + " |",
                      "", "nmu's CIFAR-10 is a JPEG re-encode of the original images, and its MIA is Song & Mittal's "
                      "entropy attack, not the reference code's variant (docs/method.md).", ""]
        lines += ["## Unlearning (random 10 % forget set; Avg. Gap to the retrained model)", ""]
        for method in [m for m in by.index if m not in ("retrain", "original")]:
            r = by.loc[method]
            lines.append(f"- {method}: failed ({r.failed})" if isinstance(r.get("failed"), str) else
                         f"- {method}: Avg. Gap **{r.avg_gap:.2f}**, {r.seconds:.1f} s = "
                         f"{100 * r.rte_vs_retrain:.1f} % of the retrain's time")
        lines += ["", "(`unlearning.md` holds every metric.)"]
    return "\n".join(lines) + "\n"


def experiment(cfg: Config, device: torch.device, executor: str | dict) -> Experiment:
    """The check's experiment (seed ``cfg.seed``)."""
    return Experiment(cfg.profile, cfg.dataset, seed=cfg.seed, device=device, progress=False, executor=executor)


SIDE_BY_SIDE = {"kind": "local", "max_concurrent": 2}


def stages_models(cfg: Config, device: torch.device, split, out: Path, throughput: pd.DataFrame | None,
                  deadline: float, sequential: bool) -> tuple[Experiment, pd.DataFrame]:
    """Stages 1-2 on the path stage 0 left in force (:func:`side_by_side`), planned with that path's
    speed. If the side-by-side jobs fail (e.g. no submitit), one after the other here, re-planned; if
    graphed training fails, without graphs, re-planned. Returns the experiment that trained them."""
    if throughput is not None:  # the trained data set's rows (the planning rows may time the same model)
        throughput = throughput[throughput["data"] == cfg.dataset]
    exp = experiment(cfg, device, SIDE_BY_SIDE if side_by_side(device, sequential) else "inline")
    recipe_epochs = exp.recipe.epochs
    ips, reserve_s = training_speed(throughput, exp.arch, device)
    try:
        return exp, stage_models(fitted(exp, ips, deadline, reserve_s), split, out, ips, recipe_epochs)
    except Exception as err:  # noqa: BLE001 -- the models can still be trained another way
        graphs_failed = device.type == "cuda" and cuda_graphs() and "nmu/graphs.py" in traceback.format_exc()
        if exp.executor == "inline" and not graphs_failed:
            raise
        log(f"training failed ({type(err).__name__}: {err}); "
            f"{'without CUDA graphs' if graphs_failed else 'one after the other in this process'}: "
            f"{traceback.format_exc()}")
        if graphs_failed:
            os.environ["NMU_CUDA_GRAPHS"] = "0"
        exp = experiment(cfg, device, "inline")
        ips, reserve_s = training_speed(throughput, exp.arch, device)
        return exp, stage_models(fitted(exp, ips, deadline, reserve_s), split, out, ips, recipe_epochs)


def fitted(exp: Experiment, ips: float | None, deadline: float, reserve_s: float) -> Experiment:
    """``exp`` with its recipe's epochs cut (said loudly) where :func:`train_epochs` says so."""
    epochs = train_epochs(exp, ips, deadline - time.time(), reserve_s)
    if epochs < exp.recipe.epochs:
        log(f"SHORTENED: {exp.recipe.epochs} epochs of both models would not fit the time left; training {epochs} "
            "epochs (the same schedule, scaled)")
        exp.recipe = exp.recipe.with_(epochs=epochs)
    return exp


def config(tiny: bool, dataset: str, seed: int) -> Config:
    """:data:`TINY`, or :data:`PAPER` on ``dataset`` with its stage-0 models (:data:`BENCH_ARCHS`,
    :data:`PLAN_ARCHS`); experiment seed ``seed``."""
    if tiny:
        return replace(TINY, seed=seed)
    return replace(PAPER, dataset=dataset, bench_archs=BENCH_ARCHS[dataset], plan_archs=PLAN_ARCHS[dataset], seed=seed)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the stages' files")
    ap.add_argument("--tiny", action="store_true", help="the smoke profile's digits and tiny CNN (CPU, seconds)")
    ap.add_argument("--dataset", choices=sorted(REFERENCE_RETRAIN), default=None,
                    help="the paper configuration's dataset (default cifar10, VGG-16-BN; cifar100: ResNet-18)")
    ap.add_argument("--stages", default="0123", help="which stages to run (default all: 0123)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="seconds the whole check may take: stages 1-2 train fewer epochs (said and recorded) if "
                         "stage 0's throughput says the recipe's would not fit, and stage 3 starts no method it "
                         "expects to end later (NatMU, RL and SalUn always run)")
    ap.add_argument("--seed", type=int, default=0, help="the experiment seed (weights, data order, forget set)")
    ap.add_argument("--sequential", action="store_true",
                    help="train the two models one after the other (always so with CUDA graphs)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                    help="DataLoader workers of the reference-style pipeline")
    ap.add_argument("--methods", default=",".join(FIRST_METHODS + MORE_METHODS),
                    help="stage 3's methods in order (NatMU, RL and SalUn always run)")
    args = ap.parse_args(argv)
    if args.tiny and args.dataset:
        ap.error("--dataset chooses the paper configuration's dataset; --tiny always uses digits")
    start = time.time()
    deadline = start + args.budget_s if args.budget_s is not None else float("inf")
    cfg = config(args.tiny, args.dataset or PAPER.dataset, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = earlier_check(args.out, cfg, args.stages)
    trained = None if {"1", "2"} & set(args.stages) else earlier.get("models")  # stage 3 uses these models
    mode = None if trained is None else trained.gpu.iloc[0]  # (read back as NaN on a CPU: "null")
    if isinstance(mode, str) and json.loads(mode).get("cuda_graphs") is False:
        log("the earlier call trained its models without CUDA graphs: so does this call")
        os.environ["NMU_CUDA_GRAPHS"] = "0"  # (part of the models' cache key)
    device = default_device()
    env = stage_environment(cfg, args.out, device)
    throughput, models, runs = (earlier.get(name) for name in ("throughput", "models", "unlearning"))
    if "0" in args.stages:
        throughput = stage_throughput(cfg, args.out, device, args.workers)
        env = stage_environment(cfg, args.out, device)  # again: stage 0 may have turned CUDA graphs off
    exp = experiment(cfg, device, "inline")
    split = exp.split("random", fraction=cfg.fraction)
    if trained is not None and trained.epochs.iloc[0] != exp.recipe.epochs:
        log(f"the earlier call trained {trained.epochs.iloc[0]} epochs (shortened): this call uses those models")
        exp.recipe = exp.recipe.with_(epochs=int(trained.epochs.iloc[0]))
    if "1" in args.stages or "2" in args.stages:
        exp, models = stages_models(cfg, device, split, args.out, throughput, deadline, args.sequential)
        runs = None  # an earlier stage 3 ran against the earlier models
    if "3" in args.stages:
        runs = stage_unlearning(exp, split, args.out, [m for m in args.methods.split(",") if m], deadline, runs)
    atomic_write(args.out / "summary.md", lambda tmp: tmp.write_text(
        summary(env, throughput, models, runs, None if args.tiny else REFERENCE_RETRAIN[cfg.dataset])))
    log(f"done in {time.time() - start:.0f} s; {args.out}/summary.md")


if __name__ == "__main__":
    main()
