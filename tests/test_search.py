"""The hyperparameter search: one file states it, every method gets the same budget, winners are
chosen on validation experiments only, and the quick presets are the committed search's output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from nmu.profiles import load_presets
from nmu.search import Search, presets_yaml, select

REPO = Path(__file__).resolve().parent.parent
SMOKE_SEARCH = {
    "exp_seeds": [100],
    "settings": {"random": {"dataset": "digits", "kind": "random", "fraction": 0.1, "presets": ["digits-random"]}},
    "fixed": {"default": {"natmu": {"epochs": 2, "weight_decay": 0.0}}},
    "budget": 2,
    "grids": {"natmu": {"lr": [1e-3, 5e-3]}, "ssd": {"alpha": [2.0, 5.0]}},
}


def write(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({**SMOKE_SEARCH, **changes}))
    return path


@pytest.mark.parametrize("changes, error, match", [
    ({"grids": {"natmu": {"lr": [1e-3, 5e-3]}, "ssd": {"alpha": [2.0]}}}, ValueError, r"every method gets 2.*'ssd': 1"),
    ({"grids": {"natmu": {"lr": [1e-3, 5e-3]}, "natmu2": {"lr": [1e-3, 5e-3]}}}, ValueError, "unknown method"),
    ({"grids": {"natmu": {"lrr": [1e-3, 5e-3]}}}, TypeError, r"natmu does not take \['lrr'\]"),
    ({"settings": {"random": {"dataset": "digits", "kind": "random"}}}, ValueError, "needs dataset, kind"),
    ({"fixed": {"clas": {}}}, ValueError, r"fixed has sections \['clas'\]"),
])
def test_a_bad_search_file_is_refused_before_any_run(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        Search.load(write(tmp_path, **changes))


def test_search_runs_every_configuration_without_the_presets_and_selects_the_lowest_gap(tmp_path):
    search = Search.load(write(tmp_path))
    assert search.runs() == 4
    table = search.run("smoke")
    assert len(table) == 4 and set(table["exp_seed"]) == {100}
    natmu = table[table["method"] == "natmu"]
    # exactly the fixed values and the configuration: the smoke presets (epochs 3, delta -0.1) are not used
    assert [h["lr"] for h in natmu["hparams"]] == [1e-3, 5e-3]
    assert all(h == {"epochs": 2, "weight_decay": 0.0, "lr": h["lr"]} for h in natmu["hparams"])
    winners = select(table, search).set_index("method")
    best = natmu.loc[natmu["avg_gap"].idxmin()]
    assert winners.loc["natmu", "config"] == best["config"] and winners.loc["natmu", "avg_gap"] == best["avg_gap"]
    assert winners.loc["natmu", "worst_avg_gap"] == natmu["avg_gap"].max()
    section = search.presets(winners.reset_index())
    assert section["digits-random"]["natmu"] == {"epochs": 2, "weight_decay": 0.0, "lr": best["lr"]}
    assert yaml.safe_load(presets_yaml(section, "a header")) == section


def test_select_flags_edge_winners_and_ranks_failed_configurations_last():
    search = Search((100, 101), {"random": {"dataset": "digits", "kind": "random", "fraction": 0.1, "presets": []}},
                    {}, {"rl": {"lr": [1e-4, 1e-3, 1e-2]}}, 3)
    rows = [{"family": "random", "method": "rl", "config": f'{{"lr": {lr}}}', "exp_seed": s, "avg_gap": gap}
            for lr, gaps in ((0.0001, (1.0, float("nan"))), (0.001, (3.0, 3.0)), (0.01, (2.0, 2.5)))
            for s, gap in zip((100, 101), gaps)]
    winner = select(pd.DataFrame(rows), search).iloc[0]
    assert winner["config"] == '{"lr": 0.01}' and winner["avg_gap"] == 2.25  # the NaN run ranks its config last
    assert winner["edge"] == "lr" and winner["failed_configs"] == 1


def test_quick_presets_are_the_committed_search_output():
    """nmu/presets.yaml's quick section is exactly what `make search` selected (results/quick/search/)."""
    selected = REPO / "results" / "quick" / "search" / "presets.yaml"
    assert selected.is_file(), "run `make search` and commit results/quick/search/"
    assert dict(load_presets("quick")) == yaml.safe_load(selected.read_text())
