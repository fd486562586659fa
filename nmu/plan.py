"""What ``make figures`` would compute under a profile, listed without computing anything or
reading any data: every original model, retrained model and unlearning run, deduplicated the way
the checkpoint cache deduplicates them (two notebooks asking for one run share it).

    python -m nmu.plan --profile paper            # counts per notebook and in all
    python -m nmu.plan --profile paper --list     # every artefact

Each notebook's grid is read from the defaults of its ``parameters`` cell (the template in
``notebooks/``), so the listing follows the notebooks; ``tests/test_notebooks.py`` checks it
against the checkpoints a real ``make figures PROFILE=smoke`` leaves behind.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

import nmu  # noqa: F401  (registers the methods)
from nmu.profiles import Profile, get_profile
from nmu.report import REPO, declared_parameters
from nmu.unlearn import METHODS


@dataclass(frozen=True, order=True)
class Artefact:
    kind: str                 # original | retrain | unlearn
    dataset: str
    exp_seed: int
    split: str = ""           # e.g. "random 0.1", "hardest 0.01", "class rocket", "subclass rocket"
    method: str = ""
    seed: int = -1
    hparams: str = ""         # the run's hyperparameters, as sorted YAML flow text

    def describe(self, profile: Profile) -> str:
        what = {"original": "original", "retrain": f"retrain on {self.split}",
                "unlearn": f"{self.method} on {self.split}, seed {self.seed}, {self.hparams}"}[self.kind]
        return f"{self.dataset} / {profile.arch_for(self.dataset)} (exp seed {self.exp_seed}): {what}"


def plan(profile: str | Profile, notebooks: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[Artefact]]:
    """``{notebook: artefacts it needs}`` under ``profile`` with each notebook's default parameters,
    updated by ``notebooks[name]`` (e.g. ``{"robustness": yaml.safe_load(search.yaml)}``)."""
    profile = get_profile(profile)
    out = {}
    for name, grid in GRIDS.items():
        declared = declared_parameters(REPO / "notebooks" / f"{name}.ipynb") or {}
        params = {k: default for k, (default, _) in declared.items()} | dict((notebooks or {}).get(name, {}))
        out[name] = list(dict.fromkeys(grid(profile, params)))
    return out


def _runs(profile: Profile, dataset: str, exp_seed: int, kind: str, split: str, methods: list[str] | None,
          seeds: Any, overrides: Mapping[str, dict] | None = None) -> Iterator[Artefact]:
    """The original, the retrain of ``split`` and every (method, seed) run on it, as ``run_setting`` computes."""
    yield Artefact("original", dataset, exp_seed)
    yield Artefact("retrain", dataset, exp_seed, split)
    for method in methods if methods is not None else list(METHODS):
        method_seeds = seeds.get(method, seeds.get("*", [0])) if isinstance(seeds, Mapping) else seeds
        hp = profile.hyperparameters(method, dataset, kind, (overrides or {}).get(method))
        for seed in method_seeds:
            yield Artefact("unlearn", dataset, exp_seed, split, method, seed,
                           yaml.safe_dump(hp, default_flow_style=True, sort_keys=True).strip())


def _exp_seeds(profile: Profile, p: dict) -> list[int]:
    return list(p["exp_seeds"] or profile.exp_seeds)


def _sample_wise(kind: str):
    def grid(profile: Profile, p: dict) -> Iterator[Artefact]:
        fractions = p["fractions"] or (profile.hardest_fractions if kind == "hardest" else ())
        for dataset in p["datasets"] or profile.sample_wise:
            for exp_seed in _exp_seeds(profile, p):
                for fraction in fractions:
                    yield from _runs(profile, dataset, exp_seed, kind, f"{kind} {fraction:g}", p["methods"], p["seeds"],
                                     p["hparams"])
    return grid


def _class_wise(profile: Profile, p: dict) -> Iterator[Artefact]:
    full, coarse, classes = profile.class_wise
    for exp_seed in _exp_seeds(profile, p):
        for cls in p["classes"] or classes:
            yield from _runs(profile, full, exp_seed, "class", f"class {cls}", p["methods"], p["seeds"], p["hparams"])
            yield from _runs(profile, coarse, exp_seed, "subclass", f"subclass {cls}", p["methods"], p["seeds"],
                             p["hparams"])


def _one_split(methods_of):
    def grid(profile: Profile, p: dict) -> Iterator[Artefact]:
        dataset = p["dataset"] or profile.dataset
        yield from _runs(profile, dataset, 0, "random", f"random {p['fraction']:g}", methods_of(p), [p["seed"]])
    return grid


def _quickstart(profile: Profile, p: dict) -> Iterator[Artefact]:
    yield from _runs(profile, p["dataset"] or profile.dataset, p["seed"], "random", f"random {p['fraction']:g}",
                     ["natmu"], [p["seed"]])


def _robustness(profile: Profile, p: dict) -> Iterator[Artefact]:
    dataset, split = p["dataset"] or profile.dataset, f"random {p['fraction']:g}"
    yield from _runs(profile, dataset, 0, "random", split, [], [p["seed"]])
    for lr in p["natmu_lrs"]:
        for delta in p["deltas"]:
            yield from _runs(profile, dataset, 0, "random", split, ["natmu"], [p["seed"]],
                             {"natmu": {"lr": lr, "delta": delta}})
    for method, spec in p["search"].items():
        for name, values in spec.items():
            for v in values:
                yield from _runs(profile, dataset, 0, "random", split, [method], [p["seed"]], {method: {name: v}})


def _hybrid_gallery(profile: Profile, p: dict) -> Iterator[Artefact]:
    yield Artefact("original", p["dataset"] or profile.dataset, p["seed"])


GRIDS = {
    "quickstart": _quickstart,
    "sample_wise": _sample_wise("random"),
    "hardest": _sample_wise("hardest"),
    "class_wise": _class_wise,
    "robustness": _robustness,
    "over_forgetting": _one_split(lambda p: p["methods"]),
    "efficiency": _one_split(lambda p: list(dict.fromkeys((p["methods"] or list(METHODS)) + p["mia_methods"]))),
    "hybrid_gallery": _hybrid_gallery,
}
"""How each notebook turns its parameters into runs (mirrors its loops over ``run_setting``)."""


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
    if args.list:
        print()
        for a in everything:
            print(a.describe(profile))


if __name__ == "__main__":
    main()
