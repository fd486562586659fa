"""Run unlearning methods on a setting and collect one tidy record per run — cached and resumable.

    exp = Experiment("quick")
    split = exp.split("random", fraction=0.1)
    table = run_setting(exp, split, ["natmu", "rl", "salun"])   # DataFrame, one row per run

Each run's unlearned weights and metrics are stored in the checkpoint cache under a key of the
experiment, split, method, hyperparameters and seed, so an interrupted notebook resumes where it
stopped and a re-run only reads files. Hyperparameters come from ``presets.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nmu.cache import cached
from nmu.experiment import Experiment
from nmu.metrics import METRIC_ORDER, avg_gap, evaluate, records_to_frame
from nmu.models import Classifier
from nmu.splits import Split
from nmu.unlearn import METHODS, unlearn

PRESETS = Path(__file__).with_name("presets.yaml")


@lru_cache(maxsize=1)
def _presets() -> dict:
    return yaml.safe_load(PRESETS.read_text())


def setting_name(dataset: str, kind: str) -> str:
    """``<dataset>-<kind>``, the key of a setting in ``presets.yaml`` (hardest shares random's)."""
    return f"{dataset}-{'random' if kind == 'hardest' else kind}"


def hyperparameters(method: str, profile: str, dataset: str, kind: str,
                    overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's hyperparameters for a setting: profile default < setting < ``overrides``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    table = _presets().get(profile, {})
    setting = table.get(setting_name(dataset, kind), {})
    return {**table.get("default", {}).get(method, {}), **setting.get(method, {}), **(overrides or {})}


def unlearned(exp: Experiment, split: Split, method: str, *, seed: int = 0,
              overrides: dict[str, Any] | None = None) -> tuple[Classifier, dict]:
    """The unlearned model and its record (metrics, run time, hyperparameters), cached.
    ``method`` may also be ``"retrain"`` or ``"original"`` (the model before unlearning)."""
    if method in ("retrain", "original"):
        return _reference_run(exp, split, method)
    hp = hyperparameters(method, exp.profile.name, exp.data.name, split.kind, overrides)
    retrained = exp.retrain(split)
    fields = {**exp.cache_fields("unlearn", split), "method": method, "hparams": hp, "seed": seed}

    def build() -> dict:
        result = unlearn(method, exp.original().model, exp.data, split, seed=seed, device=exp.device,
                         precision=exp.precision, progress=exp.progress, fresh_model=exp.new_model,
                         train_recipe=exp.recipe, **hp)
        metrics = evaluate(result.model, exp.data, split, retrained=retrained.model, device=exp.device, seed=seed)
        return {"state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()},
                "seconds": result.seconds, "metrics": metrics}

    stored, _ = cached(f"unlearn-{method}", fields, build, exp.root)
    model = exp.new_model()
    model.load_state_dict(stored["state_dict"])
    model.to(exp.device).eval()
    return model, _record(exp, split, method, seed, hp, stored["seconds"], stored["metrics"], retrained.seconds)


def _reference_run(exp: Experiment, split: Split, which: str) -> tuple[Classifier, dict]:
    """``retrain`` (the gold standard) or ``original`` (no unlearning at all: the floor any method
    must beat), evaluated against the retrained model and cached."""
    retrained = exp.retrain(split)
    model = retrained.model if which == "retrain" else exp.original().model
    fields = {**exp.cache_fields(f"{which}-metrics", split), "seed": exp.data_seed}
    stored, _ = cached(f"metrics-{which}", fields, lambda: {"metrics": evaluate(
        model, exp.data, split, retrained=retrained.model, device=exp.device, seed=exp.data_seed)}, exp.root)
    seconds = retrained.seconds if which == "retrain" else 0.0
    return model, _record(exp, split, which, exp.data_seed, exp.recipe.to_dict(), seconds, stored["metrics"],
                          retrained.seconds)


def _record(exp: Experiment, split: Split, method: str, seed: int, hp: dict, seconds: float,
            metrics: dict, retrain_seconds: float) -> dict:
    return {"profile": exp.profile.name, "dataset": exp.data.name, "train_size": len(exp.data.train_labels),
            "arch": exp.arch, "setting": split.kind,
            "split": split.description, "exp_seed": exp.init_seed, "method": method, "seed": seed,
            "hparams": copy.deepcopy(hp), "seconds": float(seconds), "rte_vs_retrain": seconds / retrain_seconds,
            **{k: float(v) for k, v in metrics.items()}}


def run_setting(exp: Experiment, split: Split, methods: list[str],
                seeds: Sequence[int] | Mapping[str, Sequence[int]] = (0,),
                overrides: Mapping[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Records of ``methods`` x ``seeds`` on ``split`` after a ``retrain`` row and an ``original`` row
    (the model before unlearning, run time 0), with ``avg_gap`` filled in against the retrained
    model of this experiment (same setting, same experiment seed).

    ``seeds`` are unlearning seeds (data order, augmentation, hybrid sampling, random labels; the
    original and retrained models stay those of ``exp``): one list for all methods, or a dict by
    method with ``"*"`` for the rest. ``overrides`` maps a method to hyperparameters that replace
    its presets."""
    _, gold = _reference_run(exp, split, "retrain")
    records = [gold, _reference_run(exp, split, "original")[1]]
    for method in methods:
        if method in ("retrain", "original"):
            continue
        method_seeds = seeds.get(method, seeds.get("*", (0,))) if isinstance(seeds, Mapping) else seeds
        for seed in method_seeds:
            _, rec = unlearned(exp, split, method, seed=seed, overrides=(overrides or {}).get(method))
            records.append(rec)
    for rec in records:
        rec["avg_gap"] = avg_gap(rec, gold, split.kind)
    return records_to_frame(records)


def summarize(table: pd.DataFrame, metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each metric, one row per (setting, method), as
    ``<metric>`` and ``<metric>_std`` columns (std is NaN for a single seed)."""
    keys = [k for k in ("dataset", "setting", "split", "method") if k in table]
    metrics = metrics or tuple(c for c in METRIC_ORDER + ("seconds", "rte_vs_retrain", "avg_gap") if c in table)
    grouped = table.groupby(keys, sort=False)[list(metrics)]
    mean, std = grouped.mean(), grouped.std()
    out = mean.join(std.add_suffix("_std"))
    return out[[c for m in metrics for c in (m, f"{m}_std")]].reset_index()
