"""The hyperparameter search: one rule places every method's grid around its reference values, the
same budget for every method, edge winners extended alike, winners chosen on validation experiments
only, and the quick presets are the committed search's output."""

from __future__ import annotations

import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nmu.profiles import load_presets
from nmu.search import Axis, Search, presets_yaml, select
from nmu.unlearn import METHODS

REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "notebooks" / "params" / "search-quick.yaml"
SMOKE_SEARCH = {
    "exp_seeds": [100],
    "settings": {"random": {"dataset": "digits", "kind": "random", "fraction": 0.1, "presets": ["digits-random"]}},
    "fixed": {"default": {"natmu": {"epochs": 2, "weight_decay": 0.0}}},
    "extend": 0,
    "methods": {"natmu": {"lr": 1e-3, "delta": {"kind": "linear", "anchor": -0.19}},
                "ssd": {"alpha": 5.0, "lam": {"kind": "log", "anchor": 1.0}}},
}


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({**SMOKE_SEARCH, **changes}, sort_keys=False))
    return path


@pytest.mark.parametrize("changes, error, match", [
    ({"methods": {"natmu": {"lr": 1e-3}}}, ValueError, r"natmu needs two axes"),
    ({"methods": {"natmu": {"lr": 1e-3, "delta": -0.19}}}, ValueError, r"natmu needs two axes"),
    ({"methods": {"natmu2": {"lr": 1e-3, "delta": {"kind": "linear", "anchor": 0.0}}}}, ValueError, "unknown method"),
    ({"methods": {"natmu": {"lrr": 1e-3, "delta": {"kind": "linear", "anchor": 0.0}}}}, TypeError,
     r"natmu does not take \['lrr'\]"),
    ({"settings": {"random": {"dataset": "digits", "kind": "random"}}}, ValueError, "needs dataset, kind"),
    ({"fixed": {"clas": {}}}, ValueError, r"fixed has sections \['clas'\]"),
])
def test_a_bad_search_file_is_refused_before_any_run(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        Search.load(write(tmp_path, **changes))


def reference(method: str, name: str, family: str):
    """A method's reference value of ``name`` in a family: the paper's scripts (the paper profile's presets)
    where they give one, else the method's code default."""
    section = {"random": "cifar10-random", "class": "cifar100-class", "subclass": "cifar20-subclass"}[family]
    paper = load_presets("paper").get(section, {}).get(method, {})
    return paper.get(name, inspect.signature(METHODS[method]).parameters[name].default)


def test_the_quick_search_follows_one_rule_for_every_method():
    """The rule stated at the top of search-quick.yaml, checked on the file: every registered method,
    two axes anchored at its reference values (in the grid), the first at decade steps, the second one
    step up (head re-initialisation, no and yes, in the class-wise families of every method that has
    it), 6 configurations each, everything else at its reference value."""
    search = Search.load(QUICK)
    assert set(search.methods) == set(METHODS) and search.extend == 1
    with_head = {m for m, f in METHODS.items() if "head_reinit" in inspect.signature(f).parameters}
    assert set(search.head_reinit) == with_head
    for method in METHODS:
        for family, setting in search.settings.items():
            first, second = search.axes(method, family)
            configs = search.configurations(method, family)
            assert len(configs) == 6, (method, family)
            assert first.anchor == reference(method, first.name, family)
            assert sorted({c[first.name] for c in configs}) == pytest.approx(
                [first.anchor / 10, first.anchor, first.anchor * 10])
            if setting["kind"] in ("class", "subclass") and method in with_head:
                assert second == Axis("head_reinit", "bool", False)
                knob = next(n for n in search.methods[method] if n != first.name)
                held = search.hyperparameters(method, family, configs[0])
                assert held[knob] == reference(method, knob, family)  # held at its reference value
            else:
                assert second.anchor == reference(method, second.name, family), (method, family)
                assert second.anchor in {c[second.name] for c in configs}
            for name, value in search.hyperparameters(method, family, configs[0]).items():
                if name not in (first.name, second.name) and name != "steps":  # SFR-on's steps: scaled, stated
                    assert value == reference(method, name, family), (method, family, name)


def test_axes_step_as_the_rule_says():
    assert [Axis("lr", "lr", 1e-3).value(s) for s in (-1, 0, 1, 2)] == [1e-4, 1e-3, 1e-2, 1e-1]
    assert Axis("gamma", "log", 5e-4).value(1) == pytest.approx(5e-4 * math.sqrt(10), rel=1e-5)
    assert Axis("delta", "linear", -0.19).value(-1) == pytest.approx(-0.29)
    assert Axis("alpha", "log1m", 0.9999).value(1) == pytest.approx(1 - 1e-4 / math.sqrt(10), rel=1e-9)
    assert Axis("epochs", "log", 5).value(1) == 16  # an integer knob stays whole
    assert Axis("ratio", "log", 0.7, max=1.0).value(1) == 1.0
    for axis in (Axis("lr", "lr", 3e-4), Axis("gamma", "log", 5e-4), Axis("delta", "linear", -0.19),
                 Axis("alpha", "log1m", 0.9999)):
        assert [axis.step_of(axis.value(s)) for s in (-2, -1, 0, 1, 2)] == [-2, -1, 0, 1, 2]


def test_an_edge_winner_is_extended_one_step_beyond_its_edge_on_every_numeric_axis():
    search = Search.load(QUICK)
    configs = search.configurations("bs", "random")
    lowest = {"lr": 1e-6, "eps": 0.1}  # lowest lr and eps: both ends
    assert search.extension("bs", "random", configs, lowest) == [{"lr": 1e-7, "eps": 0.1}, {"eps": 0.0316228, "lr": 1e-6}]
    inside = {"lr": 1e-5, "eps": 0.316228}  # interior lr, upper eps
    assert search.extension("bs", "random", configs, inside) == [{"eps": 1.0, "lr": 1e-5}]
    # head re-initialisation is no numeric axis: only the learning rate can be extended
    assert search.extension("bs", "class", search.configurations("bs", "class"),
                            {"lr": 1e-4, "head_reinit": True}) == [{"lr": 1e-3, "head_reinit": True}]


def test_search_runs_the_grid_without_the_presets_extends_edges_and_selects_the_lowest_gap(tmp_path):
    search = Search.load(write(tmp_path, extend=1))
    assert search.runs() == 12
    table = search.run("smoke")
    assert set(table["exp_seed"]) == {100}
    base = table[table["round"] == 0]
    assert len(base) == 12
    natmu = table[table["method"] == "natmu"]
    # exactly the fixed values and the configuration: the smoke presets (epochs 3, delta -0.1) are not used
    assert all(h == {"epochs": 2, "weight_decay": 0.0, "lr": h["lr"], "delta": h["delta"]} for h in natmu["hparams"])
    winners = select(table, search).set_index("method")
    for method, part in table.groupby("method"):
        best = part.loc[part["avg_gap"].idxmin()]
        assert winners.loc[method, "config"] == best["config"] and winners.loc[method, "avg_gap"] == best["avg_gap"]
        first = search.configurations(method, "random")
        grid_best = json.loads(part[part["round"] == 0].loc[part[part["round"] == 0]["avg_gap"].idxmin(), "config"])
        assert len(part[part["round"] == 1]) == len(search.extension(method, "random", first, grid_best))
    section = search.presets(winners.reset_index())
    assert section["digits-random"]["natmu"] == {"epochs": 2, "weight_decay": 0.0,
                                                 **json.loads(winners.loc["natmu", "config"])}
    assert yaml.safe_load(presets_yaml(section, "a header")) == section


def test_select_flags_edge_winners_and_ranks_failed_configurations_last():
    search = Search((100, 101), {"random": {"dataset": "digits", "kind": "random", "fraction": 0.1, "presets": []}},
                    {"rl": {"lr": 1e-3, "weight_decay": {"kind": "log", "anchor": 4e-4}}}, {})
    rows = [{"family": "random", "method": "rl", "config": json.dumps({"lr": lr, "weight_decay": 4e-4}),
             "exp_seed": s, "avg_gap": gap, "round": 0}
            for lr, gaps in ((0.0001, (1.0, float("nan"))), (0.001, (3.0, 3.0)), (0.01, (2.0, 2.5)))
            for s, gap in zip((100, 101), gaps)]
    winner = select(pd.DataFrame(rows), search).iloc[0]
    assert json.loads(winner["config"])["lr"] == 0.01 and winner["avg_gap"] == 2.25  # the NaN run ranks it last
    assert winner["edge"] == "lr, weight_decay" and winner["failed_configs"] == 1


def test_quick_presets_are_the_committed_search_output():
    """nmu/presets.yaml's quick section is exactly what `make search` selected: the presets.yaml of every
    family's folder under results/quick/search/, together."""
    families = Search.load(QUICK).settings
    selected = {}
    for family in families:
        part = REPO / "results" / "quick" / "search" / family / "presets.yaml"
        assert part.is_file(), f"run `make search-{family}` and commit results/quick/search/{family}/"
        selected.update(yaml.safe_load(part.read_text()))
    assert dict(load_presets("quick")) == selected


def test_make_search_runs_one_notebook_per_family_of_the_profiles_file(tmp_path):
    """`make search` executes the search notebook once per setting family of search-<profile>.yaml, each
    into its own folder (a part committed as it ends); `make search-<family>` runs one."""
    cmd = ["make", "-C", str(REPO), "-n", "search", "PROFILE=smoke", f"RESULTS={tmp_path}", f"PY={sys.executable}",
           f"NMU_DATA={tmp_path / 'data'}", "-o", ".venv/.installed", "-o", "data"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    runs = re.findall(r"papermill notebooks/search.ipynb \S+ -p family (\w+) .*-p out_dir (\S+)", out)
    assert runs == [(f, str(tmp_path / "search" / f)) for f in Search.load(REPO / "notebooks/params/search-smoke.yaml").settings]


def test_an_unknown_family_is_refused_naming_the_known_ones():
    search = Search.load(REPO / "notebooks/params/search-smoke.yaml")
    with pytest.raises(ValueError, match=r"no setting family \['subclass'\].*\['random', 'class'\]"):
        search.run("smoke", families=["subclass"])
    assert search.runs(families=["class"]) == search.runs() // 2
