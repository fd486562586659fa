"""Figures whose layout carries meaning: the paired forest plot, method colours, what error bars say."""

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from nmu.plots import (class_shares, experiment_title, grid_spread, metric_bars, paired_forest,  # noqa: E402
                       robustness_curves, seed_points)
from nmu.unlearn import METHODS  # noqa: E402


@pytest.mark.parametrize("settings, panels", [(4, 4), (5, 8)])
def test_paired_forest_wraps_settings_in_rows_of_four_with_the_first_rival_on_top(settings, panels):
    pairs = pd.DataFrame([{"dataset": "cifar10", "split": f"setting {s}", "rival": r, "metric": "avg_gap",
                           "diff": -1.0, "ci_low": -2.0, "ci_high": 0.0, "n": 3, "wins": 2}
                          for s in range(settings) for r in ("rl", "salun", "ft")])
    fig = paired_forest(pairs)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == panels and len(shown) == settings  # rows of four, the rest left empty
    assert [ax.get_title() for ax in shown] == [f"cifar10 setting {s}" for s in range(settings)]
    assert [t.get_text() for t in shown[0].get_yticklabels()] == ["rl", "salun", "ft"]
    for ax in shown:  # shared y axis, inverted once (not once per panel): "rl" (y = 0) on top of each
        low, high = ax.get_ylim()
        assert high < 0 < 2 < low
        assert [t.get_text() for t in ax.texts] == ["2/3"] * 3  # wins, one per rival


def bar_colors(fig) -> dict[str, str]:
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    return {n: matplotlib.colors.to_hex(bar.get_facecolor()) for n, bar in zip(names, ax.patches)}


def test_a_method_has_one_colour_in_every_figure_whatever_else_is_shown():
    rows = lambda methods: pd.DataFrame({"method": methods, "avg_gap": range(len(methods))})  # noqa: E731
    full = bar_colors(metric_bars(rows(["retrain", "original", *METHODS]), ["avg_gap"]))
    some = bar_colors(metric_bars(rows(["rl", "natmu", "bs"]), ["avg_gap"]))
    assert all(some[m] == full[m] for m in some)
    assert len(set(full.values())) == len(full)  # no two methods share a colour


def test_one_experiment_seed_is_never_called_a_confidence_interval():
    runs = pd.DataFrame([{"split": "random 10%", "exp_seed": s, "method": m, "avg_gap": g}
                         for s in (0, 1) for m, g in (("retrain", 0.0), ("natmu", 1.0 + s))])
    assert "95 % CI" in seed_points(runs)._suptitle.get_text()
    assert "no interval" in seed_points(runs[runs.exp_seed == 0])._suptitle.get_text()
    pairs = pd.DataFrame([{"dataset": "d", "split": "s", "rival": "rl", "metric": "avg_gap", "diff": -1.0,
                           "ci_low": float("nan"), "ci_high": float("nan"), "n": 1, "wins": 1}])
    title = paired_forest(pairs)._suptitle.get_text()
    assert "95 % CI" not in title and "no interval" in title
    assert "negative: NatMU closer" in paired_forest(pairs).axes[0].get_xlabel()


def test_a_search_with_one_method_far_off_is_drawn_on_a_log_scale():
    table = pd.DataFrame([{"family": "random", "method": m, "config": str(c), "avg_gap": g}
                          for m, gaps in (("natmu", (1.0, 2.0)), ("rl", (1.5, 2.5)), ("ga", (60.0, 90.0)))
                          for c, g in enumerate(gaps)])
    assert grid_spread(table).axes[0].get_yscale() == "log"
    assert grid_spread(table[table.method != "ga"]).axes[0].get_yscale() == "linear"


def test_paired_forest_says_failed_where_natmu_has_no_result():
    pairs = pd.DataFrame([{"dataset": "cifar100", "split": "class rocket", "rival": r, "metric": "avg_gap",
                           "diff": d, "ci_low": d - 1, "ci_high": d + 1, "n": n, "wins": w, "failed": f}
                          for r, d, n, w, f in [("rl", float("nan"), 0, 0, 3), ("ft", -1.0, 3, 2, 0)]])
    [ax] = [ax for ax in paired_forest(pairs).axes if ax.get_visible()]
    assert [t.get_text() for t in ax.texts] == ["failed", "2/3"]


def test_a_figure_of_one_experiment_names_its_data_set_and_seeds():
    """Single-experiment figures (quickstart, efficiency, over_forgetting, robustness, hybrid_gallery,
    the hardest samples' classes) say which data set and experiment seed they show."""
    from nmu.experiment import Experiment

    exp = Experiment("smoke", seed=3)
    split = exp.split("random", fraction=0.1)
    assert experiment_title(exp, split) == "digits / tinycnn, random 10% (class-balanced), experiment seed 3"
    assert experiment_title(exp, split, unlearn_seed=1).endswith(", experiment seed 3, unlearning seed 1")
    assert experiment_title(Experiment("smoke", seed=3, split_seed=5)) == \
        "digits / tinycnn, experiment seeds init/data/split 3/3/5"
    assert class_shares(exp.data, [split], exp_seed=3).axes[0].get_title().startswith("digits, experiment seed 3:")


def test_a_comparison_of_one_experiment_seed_names_it_under_its_own_heading():
    runs = pd.DataFrame([{"split": "class rocket", "exp_seed": 100, "method": m, "avg_gap": g}
                         for m, g in (("retrain", 0.0), ("natmu", 1.0))])
    title = seed_points(runs, title="cifar100: class-wise forgetting, quick presets").get_suptitle()
    assert title.startswith("cifar100: class-wise forgetting, quick presets\n")
    assert title.endswith("a dot per experiment seed, experiment seed 100, no interval")


def test_the_robustness_axis_shows_the_factors_alone_and_a_method_far_off_on_a_log_scale():
    """The log x axis printed its own 3x10^-1 over "x0.333"; GA at 9x the others' median squeezed them flat."""
    common = pd.DataFrame([{"method": m, "factor": f, "avg_gap": g}
                           for m, gaps in {"natmu": (3.0, 1.0, 9.0), "ga": (4.0, 4.0, 38.0), "rl": (3.0, 4.0, 6.0)}.items()
                           for f, g in zip((1 / 3, 1.0, 3.0), gaps)])
    fig = robustness_curves(common, untouched=4.3)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x1/3", "x1", "x3"]
    assert [t.get_text() for t in ax.get_xticklabels(minor=True)] == []
    assert ax.get_yscale() == "log"
