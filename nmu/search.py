"""The hyperparameter search that sets a profile's presets, on validation experiments only.

One YAML file states the whole search (``notebooks/params/search-<profile>.yaml``): the validation
experiment seeds (never reported), one validation setting per family (sample-wise random, full class,
sub-class) and the preset sections its winners go to, each method's two searched axes with their
anchors (its reference values), and the values held fixed. One rule places every method's grid
(:class:`Axis`): the first axis (the learning rate) at its anchor x 10^-1, 1, 10; the second at its
anchor and one step up; head re-initialisation, in the class-wise families of the methods that have
it, no and yes: 6 configurations per method and family. A winner on an edge of a numeric axis is then
given one more step beyond it (``extend`` rounds, the same for every method) and the winner chosen
again; a winner still on an edge is flagged. The winner per family is the configuration with the
lowest mean Avg. Gap to each validation experiment's own retrained model.

    search = Search.load("notebooks/params/search-quick.yaml")
    table = search.run("quick", families=["random"])  # one row per experiment, method, configuration
    winners = select(table, search)              # one row per family and method
    section = search.presets(winners)            # the family's part of nmu/presets.yaml's profile section

``make search`` runs each family in a notebook of its own (``results/<profile>/search/<family>/``), so
a long search is committed family by family; the profile's presets are the families' parts together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from nmu.experiment import Experiment
from nmu.profiles import Profile, get_profile, setting_name
from nmu.runs import check_methods, run_setting
from nmu.splits import CLASS_WISE, SPLIT_ARGS
from nmu.stats import config_means
from nmu.unlearn import check_hparams

STEPS = {"lr": 10.0, "log": 10 ** 0.5, "log1m": 10 ** 0.5, "linear": 0.1}
"""One step of each kind of axis: x 10 (a first axis), x 10^0.5, 1 - x / 10^0.5, + 0.1."""
BASE_STEPS = {"lr": (-1, 0, 1), "log": (0, 1), "log1m": (0, 1), "linear": (0, 1), "bool": (False, True)}
"""The steps from the anchor that make a grid, by kind of axis (``bool``: the values themselves)."""


@dataclass(frozen=True)
class Axis:
    """One searched hyperparameter of a method in a family: ``kind`` (:data:`STEPS`, or ``bool``), its
    ``anchor`` (the reference value, step 0) and an optional ``max``."""

    name: str
    kind: str
    anchor: Any
    max: float | None = None

    def value(self, step: int | bool) -> Any:
        """The value ``step`` steps up from the anchor (rounded to a whole number for an integer anchor,
        capped at ``max``); a ``bool`` axis's steps are its values."""
        if self.kind == "bool":
            return bool(step)
        s = STEPS[self.kind]
        if self.kind == "log1m":  # (six significant digits of the distance to 1)
            return 1 - float(f"{(1 - self.anchor) / s ** step:.6g}")
        v = self.anchor + step * s if self.kind == "linear" else self.anchor * s ** step
        v = min(v, self.max) if self.max is not None else v
        return max(1, round(v)) if isinstance(self.anchor, int) else float(f"{v:.6g}")

    def steps(self) -> tuple:
        return BASE_STEPS[self.kind]

    def step_of(self, value: Any) -> int:
        """How many steps up from the anchor ``value`` lies (a numeric axis)."""
        s = STEPS[self.kind]
        if self.kind == "linear":
            return round((value - self.anchor) / s)
        if self.kind == "log1m":
            return round(math.log((1 - self.anchor) / (1 - value), s))
        return round(math.log(value / self.anchor, s))


@dataclass(frozen=True)
class Search:
    exp_seeds: tuple[int, ...]
    settings: Mapping[str, Mapping[str, Any]]
    """``{family: {dataset, kind, fraction | cls, presets: [<dataset>-<kind>, ...]}}``."""
    methods: Mapping[str, Mapping[str, Any]]
    """``{method: {first axis: anchor, second knob: {kind, anchor[, max]}}}``; an anchor is one value or
    ``{family: value}``."""
    fixed: Mapping[str, Mapping[str, dict]]
    """Hyperparameters not searched: ``{"default" | family: {method: {...}}}`` (family wins)."""
    head_reinit: tuple[str, ...] = ()
    """Methods whose second axis is head re-initialisation in the class-wise families."""
    extend: int = 1
    """Rounds in which an edge winner's axis gets one more step beyond it."""
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "Search":
        """Read and check a search file (known methods and hyperparameters, two axes each)."""
        raw = yaml.safe_load(Path(path).read_text()) or {}
        missing = [k for k in ("exp_seeds", "settings", "methods", "fixed") if k not in raw]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        search = cls(tuple(raw["exp_seeds"]), raw["settings"], raw["methods"], raw["fixed"],
                     tuple(raw.get("head_reinit", ())), int(raw.get("extend", 1)), str(path))
        search.check()
        return search

    def check(self) -> None:
        check_methods(list(self.methods))
        check_methods(list(self.head_reinit))
        for family, setting in self.settings.items():
            kind = setting.get("kind")
            if kind not in SPLIT_ARGS or SPLIT_ARGS[kind] not in setting or "dataset" not in setting:
                raise ValueError(f"{self.path}: setting {family!r} needs dataset, kind ({', '.join(SPLIT_ARGS)}) "
                                 f"and its {SPLIT_ARGS.get(kind, 'fraction or cls')}, got {dict(setting)}")
        unknown = sorted(set(self.fixed) - {"default", *self.settings})
        if unknown:
            raise ValueError(f"{self.path}: fixed has sections {unknown}; use default or a family {sorted(self.settings)}")
        for method, spec in self.methods.items():
            knobs = [n for n, v in spec.items() if isinstance(v, Mapping) and "kind" in v]
            if len(spec) != 2 or len(knobs) != 1:
                raise ValueError(f"{self.path}: {method} needs two axes, its first axis (an anchor) and one knob "
                                 f"({{kind, anchor}}), got {dict(spec)}")
            for family in self.settings:
                for config in self.configurations(method, family):
                    check_hparams(method, self.hyperparameters(method, family, config))

    def _spec(self, method: str, family: str) -> tuple[str, Any, str, Mapping[str, Any], Any]:
        """``(first axis, its anchor, second knob, its spec, its anchor)`` of ``method`` in ``family``."""
        spec = self.methods[method]
        second = next(n for n, v in spec.items() if isinstance(v, Mapping) and "kind" in v)
        first = next(n for n in spec if n != second)
        pick = (lambda a: a[family] if isinstance(a, Mapping) else a)
        return first, pick(spec[first]), second, spec[second], pick(spec[second]["anchor"])

    def axes(self, method: str, family: str) -> tuple[Axis, Axis]:
        """``method``'s two searched axes in ``family`` (the rule of the module docstring)."""
        first, anchor, second, knob, knob_anchor = self._spec(method, family)
        if method in self.head_reinit and self.settings[family]["kind"] in CLASS_WISE:
            return Axis(first, "lr", anchor), Axis("head_reinit", "bool", False)
        return Axis(first, "lr", anchor), Axis(second, knob["kind"], knob_anchor, knob.get("max"))

    def configurations(self, method: str, family: str) -> list[dict[str, Any]]:
        """The grid of ``method`` in ``family``: its two axes' base steps crossed (6 configurations)."""
        a, b = self.axes(method, family)
        return [{a.name: a.value(i), b.name: b.value(j)} for i in a.steps() for j in b.steps()]

    def hyperparameters(self, method: str, family: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Everything a run of ``method`` gets: the fixed values (family over default), a second knob
        that head re-initialisation replaced at its anchor, then ``config``."""
        _, _, second, _, knob_anchor = self._spec(method, family)
        held = {second: knob_anchor} if "head_reinit" in config else {}
        return {**self.fixed.get("default", {}).get(method, {}), **self.fixed.get(family, {}).get(method, {}),
                **held, **config}

    def extension(self, method: str, family: str, tried: Sequence[Mapping[str, Any]],
                  best: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One step beyond ``best`` on each numeric axis where it is an edge of the values ``tried``, at
        ``best``'s value of the other axis (a value past the axis's ``max``, or already tried, is left out)."""
        new = []
        for axis, other in zip(self.axes(method, family), reversed(self.axes(method, family))):
            if axis.kind == "bool":
                continue
            values = sorted({c[axis.name] for c in tried})
            for end, direction in ((values[0], -1), (values[-1], 1)):
                if best[axis.name] != end:
                    continue
                beyond = axis.value(axis.step_of(end) + direction)
                config = {axis.name: beyond, other.name: best[other.name]}
                if beyond != end and config not in tried and config not in new:
                    new.append(config)
        return new

    def check_families(self, families: Sequence[str] | None = None) -> list[str]:
        """``families`` (``None``: every family of the file), refused with the known ones if unknown."""
        if families is None:
            return list(self.settings)
        unknown = [f for f in families if f not in self.settings]
        if unknown:
            raise ValueError(f"{self.path}: no setting family {unknown}; its families are {list(self.settings)}")
        return list(families)

    def runs(self, methods: Sequence[str] | None = None, families: Sequence[str] | None = None) -> int:
        """How many unlearning runs the grids make (before any extension)."""
        methods = methods or list(self.methods)
        return len(self.exp_seeds) * sum(len(self.configurations(m, f)) for m in methods
                                         for f in self.check_families(families))

    def run(self, profile: str | Profile, methods: Sequence[str] | None = None,
            executor: str | dict = "inline", families: Sequence[str] | None = None) -> pd.DataFrame:
        """Every configuration of every method (``None``: the file's) on every validation experiment of
        each of ``families`` (``None``: all), then the extension rounds: one row per run, its
        hyperparameters in ``config`` (JSON) and one column each, ``round`` 0 for the grid. The
        profile's presets are not used: a run gets exactly :meth:`hyperparameters`."""
        bare = replace(get_profile(profile), presets={})
        methods = check_methods(list(methods or self.methods))
        tables = []
        for family in self.check_families(families):
            setting = self.settings[family]
            experiments = [Experiment(bare, setting["dataset"], seed=s, executor=executor) for s in self.exp_seeds]
            splits = [exp.split(setting["kind"], **{SPLIT_ARGS[setting["kind"]]: setting[SPLIT_ARGS[setting["kind"]]]})
                      for exp in experiments]
            for method in methods:
                configs, done = self.configurations(method, family), []
                for round_ in range(self.extend + 1):
                    for config in configs:
                        hp = self.hyperparameters(method, family, config)
                        for exp, split in zip(experiments, splits):
                            table = run_setting(exp, split, [method], [0], {method: hp})
                            done.append(table[table["method"] == method].assign(
                                family=family, round=round_, config=json.dumps(config, sort_keys=True), **config))
                    tried = [json.loads(c) for c in dict.fromkeys(t["config"].iloc[0] for t in done)]
                    best = json.loads(_best(pd.concat(done, ignore_index=True))["config"])
                    configs = self.extension(method, family, tried, best)
                    if not configs:
                        break
                tables += done
        return pd.concat(tables, ignore_index=True)

    def presets(self, winners: pd.DataFrame) -> dict[str, dict[str, dict]]:
        """The preset sections the winners (:func:`select`) go to: ``{"<dataset>-<kind>": {method: hp}}``."""
        out: dict[str, dict[str, dict]] = {}
        for row in winners.itertuples():
            hp = self.hyperparameters(row.method, row.family, json.loads(row.config))
            for section in self.settings[row.family]["presets"]:
                out.setdefault(section, {})[row.method] = hp
        return out


def _best(runs: pd.DataFrame) -> pd.Series:
    """The configuration with the lowest mean Avg. Gap of one method's runs in one family."""
    mean = config_means(runs)
    return mean.loc[mean["avg_gap"].idxmin()]


def select(table: pd.DataFrame, search: Search) -> pd.DataFrame:
    """Per family and method, the configuration with the lowest mean Avg. Gap over the validation
    experiments (a configuration with a failed run ranks last), its rank statistics over the grid
    (round 0, the same configurations for every method), and ``edge``: the numeric axes whose winning
    value is an end of the values tried."""
    rows = []
    for (family, method), part in table.groupby(["family", "method"], sort=False):
        best = _best(part)
        config = json.loads(best["config"])
        tried = [json.loads(c) for c in dict.fromkeys(part["config"])]
        edge = [a.name for a in search.axes(method, family) if a.kind != "bool"
                and config[a.name] in (min(c[a.name] for c in tried), max(c[a.name] for c in tried))]
        grid = config_means(part[part["round"] == 0])["avg_gap"].replace(np.inf, np.nan)
        rows.append({"family": family, "setting": setting_name(search.settings[family]["dataset"],
                                                               search.settings[family]["kind"]),
                     "method": method, "config": best["config"], "avg_gap": best["avg_gap"],
                     "grid_median_avg_gap": grid.median(), "grid_worst_avg_gap": grid.max(),
                     "configs": len(tried), "failed_configs": int(np.isinf(config_means(part)["avg_gap"]).sum()),
                     "edge": ", ".join(edge)})
    return pd.DataFrame(rows)


def presets_yaml(section: Mapping[str, Mapping[str, dict]], header: str = "") -> str:
    """A presets section as YAML (one flow mapping per method), with ``header`` as comment lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name, methods in section.items():
        lines.append(f"{name}:")
        lines += [f"  {m}: {yaml.safe_dump(hp, default_flow_style=True, sort_keys=False).strip()}"
                  for m, hp in methods.items()]
    return "\n".join(lines) + "\n"
