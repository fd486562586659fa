"""The hyperparameter search that sets a profile's presets, on validation experiments only.

One YAML file states the whole search (``notebooks/params/search-<profile>.yaml``): the validation
experiment seeds (never reported), one validation setting per family (sample-wise random, full
class, sub-class) and the preset sections its winners go to, the hyperparameters held fixed, and
every method's grid, all of the same size (an equal budget). Each method is run at every
configuration of its grid on every validation experiment; its winner per family is the
configuration with the lowest mean Avg. Gap to that experiment's own retrained model. Grids are
not extended around a winner on their edge, for any method: the edge is flagged instead.

    search = Search.load("notebooks/params/search-quick.yaml")
    table = search.run("quick")                  # one row per family, experiment, method, configuration
    winners = select(table, search)              # one row per family and method
    section = search.presets(winners)            # the profile's section of nmu/presets.yaml
"""

from __future__ import annotations

import itertools
import json
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
from nmu.splits import SPLIT_ARGS
from nmu.stats import config_means
from nmu.unlearn import check_hparams


@dataclass(frozen=True)
class Search:
    exp_seeds: tuple[int, ...]
    settings: Mapping[str, Mapping[str, Any]]
    """``{family: {dataset, kind, fraction | cls, presets: [<dataset>-<kind>, ...]}}``."""
    fixed: Mapping[str, Mapping[str, dict]]
    """Hyperparameters not searched: ``{"default" | family: {method: {...}}}`` (family wins)."""
    grids: Mapping[str, Mapping[str, list]]
    """``{method: {hyperparameter: values}}``; a method's configurations are the product of its lists."""
    budget: int
    """Configurations per method, the same for every method."""
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "Search":
        """Read and check a search file (known methods and hyperparameters, equal budgets)."""
        raw = yaml.safe_load(Path(path).read_text()) or {}
        missing = [k for k in ("exp_seeds", "settings", "fixed", "grids", "budget") if k not in raw]
        if missing:
            raise ValueError(f"{path} lacks {missing}")
        search = cls(tuple(raw["exp_seeds"]), raw["settings"], raw["fixed"], raw["grids"], int(raw["budget"]), str(path))
        search.check()
        return search

    def check(self) -> None:
        check_methods(list(self.grids))
        for family, setting in self.settings.items():
            kind = setting.get("kind")
            if kind not in SPLIT_ARGS or SPLIT_ARGS[kind] not in setting or "dataset" not in setting:
                raise ValueError(f"{self.path}: setting {family!r} needs dataset, kind ({', '.join(SPLIT_ARGS)}) "
                                 f"and its {SPLIT_ARGS.get(kind, 'fraction or cls')}, got {dict(setting)}")
        unknown = sorted(set(self.fixed) - {"default", *self.settings})
        if unknown:
            raise ValueError(f"{self.path}: fixed has sections {unknown}; use default or a family {sorted(self.settings)}")
        sizes = {m: len(self.configurations(m)) for m in self.grids}
        unequal = {m: n for m, n in sizes.items() if n != self.budget}
        if unequal:
            raise ValueError(f"{self.path}: every method gets {self.budget} configurations; these do not: {unequal}")
        for family in self.settings:
            for method in self.grids:
                for config in self.configurations(method):
                    check_hparams(method, self.hyperparameters(method, family, config))

    def configurations(self, method: str) -> list[dict[str, Any]]:
        grid = self.grids[method]
        return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]

    def hyperparameters(self, method: str, family: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Everything a run of ``method`` gets: the fixed values (family over default), then ``config``."""
        return {**self.fixed.get("default", {}).get(method, {}), **self.fixed.get(family, {}).get(method, {}),
                **config}

    def runs(self, methods: Sequence[str] | None = None) -> int:
        """How many unlearning runs :meth:`run` makes."""
        return len(self.settings) * len(self.exp_seeds) * self.budget * len(methods or self.grids)

    def run(self, profile: str | Profile, methods: Sequence[str] | None = None,
            executor: str | dict = "inline") -> pd.DataFrame:
        """Every configuration of every method (``None``: the file's) on every validation experiment:
        one row per run, its hyperparameters in ``config`` (JSON) and one column each. The profile's
        presets are not used: a run gets exactly :meth:`hyperparameters`."""
        bare = replace(get_profile(profile), presets={})
        methods = check_methods(list(methods or self.grids))
        tables = []
        for family, setting in self.settings.items():
            for exp_seed in self.exp_seeds:
                exp = Experiment(bare, setting["dataset"], seed=exp_seed, executor=executor)
                split = exp.split(setting["kind"], **{SPLIT_ARGS[setting["kind"]]: setting[SPLIT_ARGS[setting["kind"]]]})
                for method in methods:
                    for config in self.configurations(method):
                        hp = self.hyperparameters(method, family, config)
                        table = run_setting(exp, split, [method], [0], {method: hp})
                        row = table[table["method"] == method]
                        tables.append(row.assign(family=family, config=json.dumps(config, sort_keys=True), **config))
        return pd.concat(tables, ignore_index=True)

    def presets(self, winners: pd.DataFrame) -> dict[str, dict[str, dict]]:
        """The preset sections the winners (:func:`select`) go to: ``{"<dataset>-<kind>": {method: hp}}``."""
        out: dict[str, dict[str, dict]] = {}
        for row in winners.itertuples():
            hp = self.hyperparameters(row.method, row.family, json.loads(row.config))
            for section in self.settings[row.family]["presets"]:
                out.setdefault(section, {})[row.method] = hp
        return out


def select(table: pd.DataFrame, search: Search) -> pd.DataFrame:
    """Per family and method, the configuration with the lowest mean Avg. Gap over the validation
    experiments (a configuration with a failed run ranks last), its rank statistics, and ``edge``:
    the searched hyperparameters (of three or more values) whose winning value is a grid end."""
    mean = config_means(table)
    rows = []
    for (family, method), part in mean.groupby(["family", "method"], sort=False):
        best = part.loc[part["avg_gap"].idxmin()]
        config = json.loads(best["config"])
        edge = [k for k, values in search.grids[method].items()
                if len(values) >= 3 and config[k] in (min(values), max(values))]
        finite = part["avg_gap"].replace(np.inf, np.nan)
        rows.append({"family": family, "setting": setting_name(search.settings[family]["dataset"],
                                                               search.settings[family]["kind"]),
                     "method": method, "config": best["config"], "avg_gap": best["avg_gap"],
                     "median_avg_gap": finite.median(), "worst_avg_gap": finite.max(),
                     "failed_configs": int(np.isinf(part["avg_gap"]).sum()), "edge": ", ".join(edge)})
    return pd.DataFrame(rows)


def presets_yaml(section: Mapping[str, Mapping[str, dict]], header: str = "") -> str:
    """A presets section as YAML (one flow mapping per method), with ``header`` as comment lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for name, methods in section.items():
        lines.append(f"{name}:")
        lines += [f"  {m}: {yaml.safe_dump(hp, default_flow_style=True, sort_keys=False).strip()}"
                  for m, hp in methods.items()]
    return "\n".join(lines) + "\n"
