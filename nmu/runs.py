"""Run unlearning methods on a setting and collect one tidy record per run — cached and resumable.

    exp = Experiment("quick")
    split = exp.split("random", fraction=0.1)
    table = run_setting(exp, split, ["natmu", "rl", "salun"])   # DataFrame, one row per run

Each run's unlearned weights and metrics are stored in the checkpoint cache under a key of the
experiment, split, method, hyperparameters and seed, so an interrupted notebook resumes where it
stopped and a re-run only reads files. Hyperparameters come from the profile's presets
(:meth:`nmu.profiles.Profile.hyperparameters`). Every table starts with two reference rows: the
retrained model (the gold standard, :meth:`Experiment.retrain`) and the original model (no
unlearning at all: the floor any method must beat).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from nmu.cache import cached, code_digest
from nmu.experiment import Experiment, TrainedModel
from nmu.metrics import ReferenceLogits, avg_gap, evaluate, records_to_frame
from nmu.models import Classifier
from nmu.splits import Split
from nmu.train import NonFiniteLossError
from nmu.unlearn import METHODS, check_hparams, check_method, unlearn

REFERENCES = ("retrain", "original")
"""The reference rows of every table (not methods)."""
METRICS_CODE = ("nmu.metrics",)
"""The modules whose code determines a metric record: part of its cache key."""


def hyperparameters(exp: Experiment, method: str, kind: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """``method``'s checked hyperparameters on ``exp`` for a split of ``kind`` (presets < ``overrides``)."""
    return check_hparams(method, exp.profile.hyperparameters(check_method(method), exp.data.name, kind, overrides))


def unlearned(exp: Experiment, split: Split, method: str, *, seed: int = 0,
              overrides: Mapping[str, Any] | None = None) -> tuple[Classifier, dict]:
    """The unlearned model and its record (metrics, run time, hyperparameters, the method's
    :attr:`UnlearnResult.info`), cached: the model
    under a key that includes the digest of the method's code, its metrics under one that adds the
    digest of the metrics code, so an edit recomputes exactly what it affects."""
    hp = hyperparameters(exp, method, split.kind, overrides)
    retrained = exp.retrain(split)
    fields = unlearn_fields(exp, split, method, seed, hp)
    built = {}

    def build() -> dict:
        result = unlearn(method, exp.original().model, exp.data, split, seed=seed, device=exp.device,
                         precision=exp.precision, progress=exp.progress, crop_padding=exp.recipe.crop_padding, **hp)
        built["model"] = result.model
        return {"state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()}, "seconds": result.seconds,
                "info": dict(result.info)}

    stored, _ = cached(f"unlearn-{method}", fields, build, exp.root)
    model = exp.new_model()
    model.load_state_dict(stored["state_dict"])
    model.to(exp.device).eval()
    metrics = _metrics(exp, split, f"metrics-{method}", fields, built.get("model", model), retrained, seed)
    # The method's own numbers about the run (UnlearnResult.info, e.g. ssd_dampened_share) join the record.
    return model, {**_record(exp, split, method, seed, hp, stored["seconds"], metrics, retrained.seconds),
                   **stored.get("info", {})}


def _metrics(exp: Experiment, split: Split, name: str, fields: dict, model: Classifier, retrained: TrainedModel,
             seed: int) -> dict:
    """``evaluate(model)`` against ``retrained``, cached under :func:`metrics_fields` of ``fields``."""
    stored, _ = cached(name, metrics_fields(fields), lambda: {"metrics": evaluate(
        model, exp.data, split, retrained=_reference_logits(exp, split, retrained), device=exp.device, seed=seed)},
        exp.root)
    return stored["metrics"]


_REFERENCE_LOGITS: dict[str, ReferenceLogits] = {}
"""The retrained models' logits of the last few settings evaluated, by checkpoint path."""


def _reference_logits(exp: Experiment, split: Split, retrained: TrainedModel) -> ReferenceLogits:
    """The logits of ``retrained`` (``exp.retrain(split)``) that every run of the setting is compared with,
    computed once per setting and process."""
    key = str(retrained.path)
    if key not in _REFERENCE_LOGITS:
        if len(_REFERENCE_LOGITS) >= 4:
            _REFERENCE_LOGITS.pop(next(iter(_REFERENCE_LOGITS)))
        _REFERENCE_LOGITS[key] = ReferenceLogits.of(retrained.model, exp.data, split, exp.device)
    return _REFERENCE_LOGITS[key]


def unlearn_fields(exp: Experiment, split: Split, method: str, seed: int, hp: Mapping[str, Any]) -> dict:
    """The cache key fields of ``method``'s unlearned model (checked hyperparameters ``hp``, unlearning
    seed ``seed``): the experiment's, the method's and the digest of its code."""
    return {**exp.cache_fields("unlearn", split), "method": method, "hparams": dict(hp), "seed": seed,
            "method_code": code_digest(METHODS[method].__module__, "nmu.unlearn")}


def reference_fields(exp: Experiment, split: Split, which: str) -> dict:
    """The fields whose :func:`metrics_fields` key the metrics of reference ``which`` (retrain, original)."""
    return {**exp.cache_fields(f"{which}-metrics", split), "seed": exp.data_seed}


def metrics_fields(fields: dict) -> dict:
    """The cache key fields of the metric record of the model keyed by ``fields``."""
    return {**fields, "metrics_code": code_digest(*METRICS_CODE)}


def trained_models(exp: Experiment, split: Split, methods: Sequence[str], *, seed: int = 0) -> dict[str, Classifier]:
    """``{"retrain": ..., "original": ..., method: ...}``: the reference models and each method's
    unlearned model (unlearning seed ``seed``), all cached. With ``exp.executor`` other than
    ``"inline"``, what the cache lacks is first computed by jobs (:mod:`nmu.jobs`)."""
    methods = check_methods(methods)
    _compute_missing(exp, split, [(m, seed, None) for m in methods], references=False)
    models = {"retrain": exp.retrain(split).model, "original": exp.original().model}
    return models | {m: unlearned(exp, split, m, seed=seed)[0] for m in methods}


def _compute_missing(exp: Experiment, split: Split, runs: list[tuple[str, int, Mapping[str, Any] | None]],
                     references: bool) -> dict[tuple[str, int, str], str]:
    """Where ``exp.executor`` is not inline, compute what the cache lacks for ``runs`` (and the
    reference metrics) as jobs and wait for them (:func:`nmu.jobs.compute_missing`); returns the
    runs that diverged there, ``{run_id(...): error message}``. Inline: nothing to do."""
    if exp.executor in (None, "inline"):
        return {}
    from nmu import jobs  # imported here: nmu.jobs imports this module

    return jobs.compute_missing(exp, [(split, runs, references)])


def run_id(method: str, seed: int, hp: Mapping[str, Any]) -> tuple[str, int, str]:
    """One unlearning run of a setting: method, seed and its checked hyperparameters (as JSON)."""
    return method, seed, json.dumps(hp, sort_keys=True, default=str)


def reference_records(exp: Experiment, split: Split) -> list[dict]:
    """The ``retrain`` and ``original`` records of ``split``: both models evaluated against the
    retrained one (cached), with the retrain's training time and 0 s for the original."""
    retrained = exp.retrain(split)
    records = []
    for which, model, seconds in (("retrain", retrained.model, retrained.seconds),
                                  ("original", exp.original().model, 0.0)):
        metrics = _metrics(exp, split, f"metrics-{which}", reference_fields(exp, split, which), model,
                           retrained, exp.data_seed)
        records.append(_record(exp, split, which, exp.data_seed, exp.recipe.to_dict(), seconds, metrics,
                               retrained.seconds))
    return records


def _record(exp: Experiment, split: Split, method: str, seed: int, hp: dict, seconds: float,
            metrics: dict, retrain_seconds: float) -> dict:
    return {"profile": exp.profile.name, "dataset": exp.data.name, "train_size": len(exp.data.train_labels),
            "arch": exp.arch, "setting": split.kind,
            "split": split.description, "exp_seed": exp.init_seed, "method": method, "seed": seed,
            "hparams": copy.deepcopy(hp), "seconds": float(seconds), "rte_vs_retrain": seconds / retrain_seconds,
            **{k: float(v) for k, v in metrics.items()}}


def run_setting(exp: Experiment, split: Split, methods: Sequence[str] | None = None,
                seeds: Sequence[int] | Mapping[str, Sequence[int]] = (0,),
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Records of ``methods`` (default: every registered method, ``nmu.METHODS``) x ``seeds`` on
    ``split`` after the ``retrain`` and ``original`` reference rows, with ``avg_gap`` filled in
    against the retrained model of this experiment (same setting, same experiment seed).

    ``seeds`` are unlearning seeds (data order, augmentation, hybrid sampling, random labels; the
    original and retrained models stay those of ``exp``): one list for all methods, or a dict by
    method with ``"*"`` for the rest. ``overrides`` maps a method to hyperparameters that replace
    its presets. Misspelt method names, in any of the three, are an error. A run whose loss
    diverges (:class:`nmu.train.NonFiniteLossError`) gets a row with NaN metrics and the error in a
    ``failed`` column, with a warning; the other runs go on.

    With ``exp.executor`` other than ``"inline"`` (:mod:`nmu.jobs`), every model and run missing
    from the cache is first computed by jobs (original and retrain, then the unlearning runs) and
    this function then reads the cache: the same table as inline."""
    methods = check_methods(methods, seeds, overrides)
    runs = [(method, seed, (overrides or {}).get(method)) for method in methods
            for seed in (seeds.get(method, seeds.get("*", (0,))) if isinstance(seeds, Mapping) else seeds)]
    checked = [hyperparameters(exp, method, split.kind, hp_overrides) for method, _, hp_overrides in runs]
    diverged = _compute_missing(exp, split, runs, references=True)
    gold, original = reference_records(exp, split)
    records = [gold, original]
    for (method, seed, hp_overrides), hp in zip(runs, checked):
        failure = diverged.get(run_id(method, seed, hp))  # a run that diverged in a job is not rerun here
        if failure is None:
            try:
                _, rec = unlearned(exp, split, method, seed=seed, overrides=hp_overrides)
            except NonFiniteLossError as err:  # a diverged run is a result, not a crash of the grid
                failure = str(err)
        if failure is not None:
            warnings.warn(f"{method} (seed {seed}, {hp}) failed: {failure}", stacklevel=2)
            rec = {**_record(exp, split, method, seed, hp, float("nan"), {}, gold["seconds"]), "failed": failure}
        records.append(rec)
    for rec in records:
        rec["avg_gap"] = float("nan") if "failed" in rec else avg_gap(rec, gold, split.kind)
    return records_to_frame(records)


def check_methods(methods: Sequence[str] | None, seeds: Sequence[int] | Mapping[str, Sequence[int]] = (0,),
                  overrides: Mapping[str, Any] | None = None) -> list[str]:
    """``methods`` as a list (``None`` = every registered method), after checking every method name
    in ``methods``, the keys of ``seeds`` (``"*"`` = the rest) and of ``overrides``, and the seeds' type."""
    if methods is None:
        methods = list(METHODS)
    if isinstance(methods, str) or not isinstance(methods, Sequence):
        raise TypeError(f"methods must be a list of method names, e.g. ['natmu', 'rl'], got {methods!r}")
    for where, names in (("methods", methods), ("seeds", seeds if isinstance(seeds, Mapping) else {}),
                         ("overrides", overrides or {})):
        unknown = [m for m in names if m not in METHODS and not (where == "seeds" and m == "*")]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown} in {where}; the methods are {sorted(METHODS)}"
                             + (" (retrain and original are reference rows, always included)"
                                if set(unknown) & set(REFERENCES) else ""))
    for seed_list in (seeds.values() if isinstance(seeds, Mapping) else [seeds]):
        if isinstance(seed_list, (str, int)) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                         for s in seed_list):
            raise TypeError(f"seeds must be a list of integers (or a dict of such lists by method), got {seeds!r}")
    return list(methods)
