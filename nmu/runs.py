"""Tables of runs: every unlearning method on a setting, one tidy record per run, cached and resumable.

    exp = Experiment("quick")
    split = exp.split("random", fraction=0.1)
    table = run_setting(exp, split, ["natmu", "rl", "salun"])   # DataFrame, one row per run

Each run is one cached artefact (:mod:`nmu.artefacts`: its unlearned weights and metrics under a key
of the experiment, split, method, hyperparameters and unlearning seed), so an interrupted notebook
resumes where it stopped and a re-run only reads files; with an executor, what the cache lacks is
first computed by jobs (:mod:`nmu.jobs`). Hyperparameters come from the profile's presets
(:meth:`nmu.profiles.Profile.hyperparameters`) and are resolved once per run, here. Every table
starts with two reference rows: the retrained model (the gold standard, :meth:`Experiment.retrain`)
and the original model (no unlearning at all: the floor any method must beat).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from nmu import jobs
from nmu.artefacts import cached_run, hyperparameters, record, reference_records, run_id
from nmu.experiment import Experiment, check_seed
from nmu.metrics import REFERENCES, avg_gap, forgetting_achieved, records_to_frame
from nmu.models import Classifier
from nmu.splits import Split
from nmu.storage import progress_bar
from nmu.train import NonFiniteLossError
from nmu.unlearn import METHODS

Seeds = Sequence[int] | Mapping[str, Sequence[int]]
"""Unlearning seeds: one list for every method, or a dict by method with ``"*"`` for the rest."""


def trained_models(exp: Experiment, split: Split, methods: Sequence[str], *, seed: int = 0) -> dict[str, Classifier]:
    """``{"retrain": ..., "original": ..., method: ...}``: the reference models and each method's
    unlearned model (presets, unlearning seed ``seed``), all cached. With ``exp.executor`` other than
    ``"inline"``, what the cache lacks is first computed by jobs (:mod:`nmu.jobs`)."""
    runs = [(m, seed, hyperparameters(exp, m, split.kind)) for m in check_methods(methods)]
    jobs.compute_missing(exp, [(split, runs, False)])
    models = {"retrain": exp.retrain(split).model, "original": exp.original().model}
    return models | {m: cached_run(exp, split, m, hp, seed=seed)[0] for m, seed, hp in runs}


def seeds_of(method: str, seeds: Seeds) -> Sequence[int]:
    """The unlearning seeds of ``method`` in ``seeds`` (a list for all, or a dict with ``"*"`` for the rest)."""
    return seeds.get(method, seeds.get("*", (0,))) if isinstance(seeds, Mapping) else seeds


def run_setting(exp: Experiment, split: Split, methods: Sequence[str] | None = None, seeds: Seeds = (0,),
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
    runs = [(method, seed, hyperparameters(exp, method, split.kind, (overrides or {}).get(method)))
            for method in methods for seed in seeds_of(method, seeds)]
    diverged = jobs.compute_missing(exp, [(split, runs, True)])
    gold, original = reference_records(exp, split)
    records = [gold, original]
    bar = progress_bar(progress=exp.progress, iterable=runs, desc=f"{exp.data.name}, {split.description}: runs",
                       unit="run", leave=True)  # each run's own bar (steps, its ETA) below it
    for method, seed, hp in bar:
        failure = diverged.get(run_id(method, seed, hp))  # a run that diverged in a job is not rerun here
        if failure is None:
            try:
                _, rec = cached_run(exp, split, method, hp, seed=seed)
            except NonFiniteLossError as err:  # a diverged run is a result, not a crash of the grid
                failure = str(err)
        if failure is not None:
            warnings.warn(f"{method} (seed {seed}, {hp}) failed: {failure}", stacklevel=2)
            rec = {**record(exp, split, method, seed, hp, float("nan"), {}, gold["seconds"]), "failed": failure}
        records.append(rec)
    for rec in records:
        failed = "failed" in rec
        rec["avg_gap"] = float("nan") if failed else avg_gap(rec, gold, split.kind)
        rec["forgetting_achieved"] = float("nan") if failed else forgetting_achieved(rec, original, gold)
    return records_to_frame(records)


def check_methods(methods: Sequence[str] | None, seeds: Seeds = (0,),
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
        if isinstance(seed_list, (str, int)) or not isinstance(seed_list, Sequence):
            raise TypeError(f"seeds must be a list of integers (or a dict of such lists by method), got {seeds!r}")
        for seed in seed_list:
            check_seed(f"an unlearning seed (in seeds={seeds!r})", seed)
    return list(methods)
