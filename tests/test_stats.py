"""Means with confidence intervals over experiment seeds, and paired comparisons."""

import math

import numpy as np
import pandas as pd
import pytest

from nmu.stats import ci95, gaps_to_retrain, paired, summarize, with_ci


def runs_table() -> pd.DataFrame:
    """Two settings x three experiment seeds; natmu twice (unlearning seeds 0, 1) in each experiment."""
    rows = []
    for split in ("random 10%", "class rocket"):
        for exp_seed, (gold, nat0, nat1, rl) in enumerate([(80, 3.0, 5.0, 6.0), (82, 1.0, 1.0, 2.0), (81, 2.0, 4.0, 1.0)]):
            rows += [{"split": split, "exp_seed": exp_seed, "method": "retrain", "seed": exp_seed,
                      "acc_forget": float(gold), "avg_gap": 0.0},
                     {"split": split, "exp_seed": exp_seed, "method": "natmu", "seed": 0, "acc_forget": gold - nat0,
                      "avg_gap": nat0},
                     {"split": split, "exp_seed": exp_seed, "method": "natmu", "seed": 1, "acc_forget": gold - nat1,
                      "avg_gap": nat1},
                     {"split": split, "exp_seed": exp_seed, "method": "rl", "seed": 0, "acc_forget": gold + rl,
                      "avg_gap": rl}]
    return pd.DataFrame(rows)


def test_ci95_is_the_student_t_interval():
    assert ci95([1.0, 2.0, 3.0]) == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isnan(ci95([5.0])) and math.isnan(ci95([1.0, float("nan")]))
    assert ci95([2.0, 2.0, 2.0]) == 0.0


def test_summarize_averages_unlearning_seeds_before_experiment_seeds():
    s = summarize(runs_table(), ["avg_gap"]).set_index(["split", "method"])
    natmu = s.loc[("random 10%", "natmu")]
    # per experiment: 4, 1, 3 -> mean 8/3; the interval is over those three numbers, not six runs
    assert natmu["avg_gap"] == pytest.approx(8 / 3) and natmu["n"] == 3
    assert natmu["avg_gap_ci"] == pytest.approx(ci95([4.0, 1.0, 3.0]))
    assert list(s.columns) == ["avg_gap", "avg_gap_ci", "n", "failed"] and natmu["failed"] == 0


def test_paired_differences_wins_and_interval():
    table = paired(runs_table(), "natmu").set_index(["split", "rival"])
    row = table.loc[("class rocket", "rl")]
    diff = np.array([4.0, 1.0, 3.0]) - np.array([6.0, 2.0, 1.0])  # natmu - rl per experiment seed
    assert row["diff"] == pytest.approx(diff.mean()) and row["n"] == 3 and row["wins"] == 2
    assert row["ci_high"] - row["diff"] == pytest.approx(ci95(diff))
    assert ("class rocket", "retrain") not in table.index  # reference rows are not rivals
    # a rival that one setting does not run gets no row there (not a NaN row)
    partial = runs_table()
    partial = partial[~((partial["method"] == "rl") & (partial["split"] == "random 10%"))]
    assert list(paired(partial, "natmu")["split"]) == ["class rocket"]
    with pytest.raises(ValueError, match="no 'ssd' rows"):
        paired(runs_table(), "ssd")
    with pytest.raises(ValueError, match=r"no rows of \['salun'\]"):
        paired(runs_table(), "natmu", against=["salun"])


def test_gaps_to_retrain_use_the_same_experiment_seed():
    table = gaps_to_retrain(runs_table(), ["acc_forget"])
    rl = table[(table["method"] == "rl") & (table["split"] == "random 10%")]
    assert rl["gap_acc_forget"].tolist() == [6.0, 2.0, 1.0]
    doubled = pd.concat([runs_table(), runs_table().head(1)])
    with pytest.raises(ValueError, match="more than one retrain row"):
        gaps_to_retrain(doubled, ["acc_forget"])


def test_with_ci_formats_mean_and_half_width():
    s = with_ci(summarize(runs_table(), ["avg_gap"]), ["avg_gap"])
    assert s.set_index(["split", "method"]).loc[("random 10%", "rl"), "avg_gap"] == \
        f"{3.0:.2f} ± {ci95([6.0, 2.0, 1.0]):.2f}"
    single = with_ci(summarize(runs_table()[runs_table()["exp_seed"] == 0], ["avg_gap"]), ["avg_gap"])
    assert single.set_index(["split", "method"]).loc[("random 10%", "rl"), "avg_gap"] == "6.00"


def failing(table: pd.DataFrame, where) -> pd.DataFrame:
    """``table`` with the runs ``where`` selects failed, as ``run_setting`` writes them: no metrics, the error."""
    table = table.assign(failed=None)
    rows = where(table)
    table.loc[rows, ["acc_forget", "avg_gap"]] = float("nan")
    table.loc[rows, "failed"] = "NonFiniteLossError: the loss is nan"
    return table


def test_a_failed_run_is_counted_not_dropped():
    """A diverged run used to vanish: ``n`` counted it, the mean skipped it, ``paired`` lost the setting."""
    natmu = lambda t: t["method"] == "natmu"  # noqa: E731
    one_seed = failing(runs_table(), lambda t: natmu(t) & (t["exp_seed"] == 2) & (t["seed"] == 1))
    s = summarize(one_seed, ["avg_gap"]).set_index(["split", "method"]).loc[("random 10%", "natmu")]
    assert (s["n"], s["failed"]) == (2, 1)  # its other unlearning seed finished: the experiment still failed
    assert s["avg_gap"] == pytest.approx((4.0 + 1.0) / 2) and s["avg_gap_ci"] == pytest.approx(ci95([4.0, 1.0]))
    everywhere = failing(runs_table(), lambda t: natmu(t) & (t["split"] == "class rocket"))
    table = paired(everywhere, "natmu").set_index(["split", "rival"])
    row = table.loc[("class rocket", "rl")]
    assert (row["n"], row["seeds"], row["failed"], row["rival_failed"]) == (0, 3, 3, 0) and np.isnan(row["diff"])
    assert table.loc[("random 10%", "rl"), "failed"] == 0 and table.loc[("random 10%", "rl"), "n"] == 3
    shown = with_ci(summarize(everywhere, ["avg_gap"]), ["avg_gap"]).set_index(["split", "method"])["avg_gap"]
    assert shown[("class rocket", "natmu")] == "failed" and shown[("class rocket", "rl")] == f"3.00 ± {ci95([6, 2, 1]):.2f}"
    assert with_ci(summarize(one_seed, ["avg_gap"]), ["avg_gap"]).set_index(["split", "method"]).loc[
        ("random 10%", "natmu"), "avg_gap"] == f"2.50 ± {ci95([4.0, 1.0]):.2f} (1 failed)"
