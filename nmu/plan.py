"""Each notebook's grid, in one place: the settings it runs (notebooks loop over :func:`grid`) and
what ``make figures`` computes under a profile (:func:`plan`, ``make plan``), listed without
computing anything or reading any data: every original model, retrained model and unlearning run,
deduplicated the way the checkpoint cache deduplicates them (two notebooks asking for one run share it).

    settings = grid("sample_wise", report.parameters)      # in a notebook: its settings, then
    tables = [s.run(executor) for s in settings]          # one run_setting table each
    python -m nmu.plan --profile paper                    # counts per notebook and in all
    python -m nmu.plan --profile paper --list             # every artefact

A grid reads the notebook's parameters (defaults: its ``parameters`` cell in ``notebooks/``);
``tests/test_notebooks.py`` checks the plan against the checkpoints a real ``make figures
PROFILE=smoke`` leaves behind.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

import nmu  # noqa: F401  (registers the methods)
from nmu.cost import preflight
from nmu.experiment import Experiment
from nmu.profiles import Profile, get_profile
from nmu.report import REPO, declared_parameters
from nmu.runs import Seeds, run_setting, seeds_of
from nmu.splits import SPLIT_ARGS, Split
from nmu.unlearn import METHODS


@dataclass(frozen=True, order=True)
class Artefact:
    kind: str                 # original | retrain | unlearn
    dataset: str
    exp_seed: int
    split: str = ""           # e.g. "random 0.1", "hardest 0.01", "class rocket", "subclass rocket"
    method: str = ""
    unlearn_seed: int = -1
    hparams: str = ""         # the run's hyperparameters, as sorted YAML flow text

    def describe(self, profile: Profile) -> str:
        what = {"original": "original", "retrain": f"retrain on {self.split}",
                "unlearn": f"{self.method} on {self.split}, seed {self.unlearn_seed}, {self.hparams}"}[self.kind]
        return f"{self.dataset} / {profile.arch_for(self.dataset)} (exp seed {self.exp_seed}): {what}"


@dataclass
class Setting:
    """One setting of a notebook's grid: an experiment (profile, dataset, experiment seed), a forget
    split (``kind`` and its fraction or class, ``value``) and the unlearning runs on it (``methods``,
    None = every registered one; unlearning ``seeds``; per-method ``overrides`` of the presets).
    ``runs=False``: the notebook needs the original model only."""

    profile: Profile
    dataset: str
    exp_seed: int
    kind: str
    value: float | str
    methods: tuple[str, ...] | None = None
    seeds: Seeds = (0,)
    overrides: Mapping[str, dict] = field(default_factory=dict)
    runs: bool = True
    note: Mapping[str, Any] = field(default_factory=dict)
    """What the setting stands for in its notebook (e.g. ``{"grid": "common", "factor": 3.0}``)."""

    @property
    def label(self) -> str:
        value = f"{self.value:g}" if isinstance(self.value, float) else self.value
        return f"{self.kind} {value}"

    def open(self, executor: str | dict = "inline") -> tuple[Experiment, Split]:
        """The experiment and its split (building the split may train the original: ``hardest``)."""
        exp = Experiment(self.profile, self.dataset, seed=self.exp_seed, executor=executor)
        return exp, exp.split(self.kind, **{SPLIT_ARGS[self.kind]: self.value})

    def run(self, executor: str | dict = "inline") -> pd.DataFrame:
        """The setting's table of runs (:func:`nmu.runs.run_setting`)."""
        exp, split = self.open(executor)
        return run_setting(exp, split, self.methods, self.seeds, self.overrides)

    def artefacts(self) -> Iterator[Artefact]:
        """What :meth:`run` computes from an empty cache: the original, the retrain of the split and
        every (method, seed) run on it."""
        yield Artefact("original", self.dataset, self.exp_seed)
        if not self.runs:
            return
        yield Artefact("retrain", self.dataset, self.exp_seed, self.label)
        for method in self.methods if self.methods is not None else list(METHODS):
            hp = self.profile.hyperparameters(method, self.dataset, self.kind, self.overrides.get(method))
            for seed in seeds_of(method, self.seeds):
                yield Artefact("unlearn", self.dataset, self.exp_seed, self.label, method, seed,
                               yaml.safe_dump(hp, default_flow_style=True, sort_keys=True).strip())


Grid = Callable[[Profile, Mapping[str, Any]], Iterator[Setting]]


def _methods(value: list | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _sample_wise(kind: str) -> Grid:
    def settings(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
        fractions = p["fractions"] or (profile.hardest_fractions if kind == "hardest" else ())
        for dataset in p["datasets"] or profile.sample_wise:
            for exp_seed in p["exp_seeds"] or profile.exp_seeds:
                for fraction in fractions:
                    yield Setting(profile, dataset, exp_seed, kind, fraction, _methods(p["methods"]), p["seeds"],
                                  p["overrides"])
    return settings


def _class_wise(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
    cw = profile.class_wise
    for exp_seed in p["exp_seeds"] or profile.exp_seeds:
        for cls in p["classes"] or cw.classes:
            for dataset, kind in ((cw.full, "class"), (cw.coarse, "subclass")):
                yield Setting(profile, dataset, exp_seed, kind, cls, _methods(p["methods"]), p["seeds"], p["overrides"])


def _one_split(methods_of: Callable[[Mapping[str, Any]], list | None]) -> Grid:
    """Notebooks on one random split of experiment 0, unlearning seed ``seed``."""
    def settings(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
        yield Setting(profile, p["dataset"] or profile.dataset, 0, "random", p["fraction"], _methods(methods_of(p)),
                      (p["seed"],))
    return settings


def _quickstart(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
    yield Setting(profile, p["dataset"] or profile.dataset, p["seed"], "random", p["fraction"], ("natmu",),
                  (p["seed"],))


def first_axis(method: str) -> str:
    """The hyperparameter a method's robustness is measured over: its learning rate (SSD, which does
    not train: its selection threshold alpha)."""
    return "lr" if "lr" in inspect.signature(METHODS[method]).parameters else "alpha"


def _preset(profile: Profile, method: str, dataset: str, name: str) -> Any:
    """``method``'s value of ``name`` under the profile's random-forgetting presets (else its code default)."""
    return profile.hyperparameters(method, dataset, "random").get(
        name, inspect.signature(METHODS[method]).parameters[name].default)


def _robustness(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
    """The reference rows alone; NatMU's lr x delta grid around its presets (the paper's figure); then
    every method's first axis (:func:`first_axis`) times each of ``lr_factors`` around its own preset."""
    dataset = p["dataset"] or profile.dataset

    def one(method: str, overrides: dict, note: dict) -> Setting:
        return Setting(profile, dataset, 0, "random", p["fraction"], (method,), (p["seed"],), {method: overrides}, note=note)

    yield Setting(profile, dataset, 0, "random", p["fraction"], (), (p["seed"],))
    lr, delta = _preset(profile, "natmu", dataset, "lr"), _preset(profile, "natmu", dataset, "delta")
    for factor in p["lr_factors"]:
        for offset in p["delta_offsets"]:
            yield one("natmu", {"lr": lr * factor, "delta": round(delta + offset, 6)},
                      {"grid": "natmu", "factor": factor, "offset": offset})
    for method in p["methods"] or list(METHODS):
        name = first_axis(method)
        for factor in p["lr_factors"]:
            yield one(method, {name: _preset(profile, method, dataset, name) * factor},
                      {"grid": "common", "factor": factor, "hparam": name})


def _hybrid_gallery(profile: Profile, p: Mapping[str, Any]) -> Iterator[Setting]:
    yield Setting(profile, p["dataset"] or profile.dataset, p["seed"], "random", p["fraction"], runs=False)


GRIDS: dict[str, Grid] = {
    "quickstart": _quickstart,
    "sample_wise": _sample_wise("random"),
    "hardest": _sample_wise("hardest"),
    "class_wise": _class_wise,
    "robustness": _robustness,
    "over_forgetting": _one_split(lambda p: p["methods"]),
    "efficiency": _one_split(lambda p: list(dict.fromkeys((p["methods"] or list(METHODS)) + p["mia_methods"]))),
    "hybrid_gallery": _hybrid_gallery,
}
"""How each notebook turns its parameters into settings."""


def grid(notebook: str, parameters: Mapping[str, Any]) -> list[Setting]:
    """The settings ``notebook`` runs with ``parameters`` (its ``parameters`` cell's defaults where
    not given; ``profile`` among them), in the order it runs them."""
    if notebook not in GRIDS:
        raise ValueError(f"no grid for notebook {notebook!r}; the notebooks with one are {sorted(GRIDS)}")
    declared = declared_parameters(REPO / "notebooks" / f"{notebook}.ipynb") or {}
    params = {k: default for k, (default, _) in declared.items()} | dict(parameters)
    return list(GRIDS[notebook](get_profile(params["profile"]), params))


def plan(profile: str | Profile, notebooks: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[Artefact]]:
    """``{notebook: artefacts it needs}`` under ``profile`` with each notebook's default parameters,
    updated by ``notebooks[name]`` (e.g. ``{"robustness": yaml.safe_load(search.yaml)}``)."""
    profile = get_profile(profile)
    return {name: list(dict.fromkeys(a for s in grid(name, {**(notebooks or {}).get(name, {}), "profile": profile})
                                     for a in s.artefacts()))
            for name in GRIDS}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="List what `make figures` would compute under a profile.")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--list", action="store_true", help="print every artefact, not only the counts")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    per_notebook = plan(profile)
    everything = list(dict.fromkeys(a for arts in per_notebook.values() for a in arts))
    print(f"make figures PROFILE={profile.name}: what it computes from an empty cache (shared runs counted once)\n")
    print(f"{'notebook':<16s} {'originals':>9s} {'retrains':>9s} {'unlearning runs':>16s}")
    for name, arts in [*per_notebook.items(), ("all (distinct)", everything)]:
        counts = [sum(a.kind == k for a in arts) for k in ("original", "retrain", "unlearn")]
        print(f"{name:<16s} {counts[0]:>9d} {counts[1]:>9d} {counts[2]:>16d}")
    trainings = sum(a.kind != "unlearn" for a in everything)
    print(f"\n{trainings} trainings of {profile.recipe.epochs} epochs; models: "
          + ", ".join(sorted({f'{d}: {profile.arch_for(d)}' for d in {a.dataset for a in everything}})))
    print()
    for line in preflight(profile, REPO / "results" / profile.name):
        print(line)
    if args.list:
        print()
        for a in everything:
            print(a.describe(profile))


if __name__ == "__main__":
    main()
