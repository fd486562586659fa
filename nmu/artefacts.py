"""One cached artefact and its key: an unlearning run (its model and its metric record) and the
reference records of a setting (the retrained and the original model evaluated).

    hp = hyperparameters(exp, "natmu", split.kind)          # presets < overrides, checked: once
    model, record = cached_run(exp, split, "natmu", hp)     # computed once, then read from the cache

Each artefact lives in the checkpoint cache (:mod:`nmu.cache`) under a name (:func:`targets`) and a
key of everything that determines it: the experiment's fields (:meth:`Experiment.cache_fields`),
the split, the method, its checked hyperparameters, the unlearning seed and the digest of the code
that computes it (the method's module, and for metric records :data:`METRICS_CODE`), so an edit
recomputes exactly what it affects. :mod:`nmu.jobs` asks :func:`targets` what a job must write;
:mod:`nmu.runs` builds tables from these artefacts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import torch

from nmu.cache import cached, checkpoint_path, code_digest, load_weights
from nmu.experiment import Experiment, TrainedModel
from nmu.metrics import REFERENCES, ReferenceLogits, evaluate
from nmu.models import Classifier
from nmu.splits import Split
from nmu.unlearn import METHODS, check_hparams, check_method, unlearn

METRICS_CODE = ("nmu.metrics",)
"""The modules whose code determines a metric record: part of its cache key."""
ARTEFACTS = ("original", "retrain", "references", "unlearn")
"""What one job computes (:func:`targets`): a trained model, a setting's reference records, a run."""


def hyperparameters(exp: Experiment, method: str, kind: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """``method``'s checked hyperparameters on ``exp`` for a split of ``kind``: its presets
    (:meth:`nmu.profiles.Profile.hyperparameters`) < ``overrides``. Resolved once per run, by the caller."""
    return check_hparams(method, exp.profile.hyperparameters(check_method(method), exp.data.name, kind, overrides))


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


def targets(exp: Experiment, what: str, split: Split | None = None, method: str | None = None, seed: int = 0,
            hp: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """``{cache name: key fields}`` of one artefact (``what`` in :data:`ARTEFACTS`): the names and keys
    under which it is written, for the functions below and for the jobs that compute it."""
    if what in ("original", "retrain"):
        return {what: exp.cache_fields(what, split)}
    if what == "references":
        return {f"metrics-{which}": metrics_fields(reference_fields(exp, split, which)) for which in REFERENCES}
    if what != "unlearn":
        raise ValueError(f"unknown artefact {what!r}; use one of {list(ARTEFACTS)}")
    fields = unlearn_fields(exp, split, method, seed, hp)
    return {f"unlearn-{method}": fields, f"metrics-{method}": metrics_fields(fields)}


def run_id(method: str, seed: int, hp: Mapping[str, Any]) -> tuple[str, int, str]:
    """One unlearning run of a setting: method, unlearning seed and its checked hyperparameters (as JSON)."""
    return method, seed, json.dumps(hp, sort_keys=True, default=str)


def cached_run(exp: Experiment, split: Split, method: str, hp: Mapping[str, Any], *,
               seed: int = 0) -> tuple[Classifier, dict]:
    """The unlearned model of ``method`` with checked hyperparameters ``hp`` (:func:`hyperparameters`)
    and unlearning seed ``seed``, and its record (metrics, run time, hyperparameters, the method's
    :attr:`nmu.unlearn.UnlearnResult.info`), each computed once and then read from the cache."""
    retrained = exp.retrain(split)
    (model_name, fields), (metrics_name, metric_fields) = targets(exp, "unlearn", split, method, seed, hp).items()
    built = {}

    def build() -> dict:
        result = unlearn(method, exp.original().model, exp.data, split, seed=seed, device=exp.device,
                         precision=exp.precision, progress=exp.progress, crop_padding=exp.recipe.crop_padding, **hp)
        built["model"] = result.model
        return {"state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()}, "seconds": result.seconds,
                "info": dict(result.info)}

    stored, _ = cached(model_name, fields, build, exp.root)
    model = exp.new_model()
    load_weights(model, stored, checkpoint_path(model_name, fields, exp.root))
    # the layout training leaves (fit): a loaded model then computes exactly what the trained one did
    model.to(device=exp.device, memory_format=torch.channels_last).eval()
    metrics = _metrics(exp, split, metrics_name, metric_fields, built.get("model", model), retrained, seed)
    # The method's own numbers about the run (UnlearnResult.info, e.g. ssd_dampened_share) join the record.
    return model, {**record(exp, split, method, seed, hp, stored["seconds"], metrics, retrained.seconds),
                   **stored.get("info", {})}


def reference_records(exp: Experiment, split: Split) -> list[dict]:
    """The ``retrain`` and ``original`` records of ``split``: both models evaluated against the
    retrained one (cached), with the retrain's training time and 0 s for the original."""
    retrained = exp.retrain(split)
    names = targets(exp, "references", split)
    records = []
    for which, model, seconds in (("retrain", retrained.model, retrained.seconds),
                                  ("original", exp.original().model, 0.0)):
        name = f"metrics-{which}"
        metrics = _metrics(exp, split, name, names[name], model, retrained, exp.data_seed)
        records.append(record(exp, split, which, exp.data_seed, exp.recipe.to_dict(), seconds, metrics,
                              retrained.seconds))
    return records


def record(exp: Experiment, split: Split, method: str, seed: int, hp: Mapping[str, Any], seconds: float,
           metrics: Mapping[str, float], retrain_seconds: float) -> dict:
    """One row of a table of runs: the setting, the method, its unlearning seed and hyperparameters,
    its run time (and as a fraction of the retrain's) and its metrics."""
    return {"profile": exp.profile.name, "dataset": exp.data.name, "train_size": len(exp.data.train_labels),
            "arch": exp.arch, "setting": split.kind, "split": split.description, "exp_seed": exp.init_seed,
            "method": method, "unlearn_seed": seed, "hparams": copy.deepcopy(dict(hp)), "seconds": float(seconds),
            "rte_vs_retrain": seconds / retrain_seconds, **{k: float(v) for k, v in metrics.items()}}


def _metrics(exp: Experiment, split: Split, name: str, fields: dict, model: Classifier, retrained: TrainedModel,
             seed: int) -> dict:
    """``evaluate(model)`` against ``retrained``, cached as ``name`` under the key ``fields``."""
    stored, _ = cached(name, fields, lambda: {"metrics": evaluate(
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
