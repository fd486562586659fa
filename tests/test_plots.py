"""Figures whose layout carries meaning: the paired forest plot; a colour of its own for every method."""

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from nmu.plots import PALETTE, _colors, paired_forest  # noqa: E402
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


def test_every_method_and_reference_gets_a_colour_of_its_own():
    import nmu  # noqa: F401  (registers the methods)
    names = ["retrain", "original", *METHODS]
    colors = _colors(names)
    assert len(set(colors)) == len(names) and colors[:2] == [PALETTE["retrain"], PALETTE["original"]]
