"""The claims table: one rule turns paired comparisons into holds / partly / does not."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from nmu.claims import (claims_table, forgetting_profile, over_forgetting, over_forgetting_scores, per_setting,
                        robustness, run_time, verdict)


def pairs(*cis, n=3, failed=0):
    return pd.DataFrame([{"diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "n": n, "failed": failed}
                         for lo, hi in cis], columns=["diff", "ci_low", "ci_high", "n", "failed"])


def test_verdict_rule():
    assert verdict(pairs((-3, -1), (-2, -0.5))) == "holds"
    assert verdict(pairs((-3, -1), (-2, 0.5))) == "partly"          # ahead in both, one not resolved
    assert verdict(pairs((-3, -1), (0.5, 2))) == "does not"         # a rival resolved better
    assert verdict(pairs((-3, 1), (-1, 2), (-0.5, 3))) == "does not"  # ahead on average in 1 of 3
    assert verdict(pairs()) == "not measured"
    assert verdict(pairs((-3, -1), (-2, -0.5), failed=1)) == "does not"  # a failed NatMU run decides
    assert verdict(pairs((-3, -1), (-2, -0.5), n=1)) == "not measured (n = 1)"  # no interval: no verdict


def runs_table(natmu_gap, rl_gap, natmu_forget, rl_forget, natmu_rte=0.05):
    """Sample-wise runs, three experiment seeds: retrain (acc_forget 80), natmu and rl."""
    rows = []
    for s in range(3):
        common = {"dataset": "cifar10", "setting": "random", "split": "random 10%", "exp_seed": s, "seed": 0}
        rows += [{**common, "method": "retrain", "avg_gap": 0.0, "acc_forget": 80.0, "mia_entropy": 60.0,
                  "rte_vs_retrain": 1.0, "forgetting_achieved": 1.0},
                 {**common, "method": "natmu", "avg_gap": natmu_gap[s], "acc_forget": natmu_forget[s],
                  "mia_entropy": 61.0, "rte_vs_retrain": natmu_rte, "forgetting_achieved": 0.9},
                 {**common, "method": "rl", "avg_gap": rl_gap[s], "acc_forget": rl_forget[s], "mia_entropy": 40.0,
                  "rte_vs_retrain": natmu_rte, "forgetting_achieved": 2.0}]
    return pd.DataFrame(rows)


def test_claims_table_follows_the_runs_whichever_way_they_come_out():
    good = claims_table(runs_table([1.0, 1.2, 0.9], [5.0, 6.0, 5.5], [79, 81, 78], [50, 55, 52])).set_index("claim")
    assert good.iloc[0]["verdict"] == "holds" and good.iloc[0]["where it fails"] == "none"
    over = over_forgetting(runs_table([1.0, 1.2, 0.9], [5.0, 6.0, 5.5], [79, 81, 78], [50, 55, 52]))
    assert set(over["metric"]) == {"over_forgetting"} and (over["ci_high"] < 0).all()
    assert good.iloc[-1]["verdict"] == "holds"  # 5 % of the retrain's time
    bad = claims_table(runs_table([5.0, 6.0, 5.5], [1.0, 1.2, 0.9], [50, 55, 52], [79, 81, 78], natmu_rte=0.6))
    assert bad.iloc[0]["verdict"] == "does not" and "rl" in bad.iloc[0]["where it fails"]
    assert bad.iloc[-1]["verdict"] == "does not"
    times = run_time(runs_table([1.0] * 3, [2.0] * 3, [80] * 3, [80] * 3, natmu_rte=0.3))
    assert times.iloc[0]["mean"] == 0.3 and times.iloc[0]["n"] == 3


def test_a_rival_absent_from_a_setting_is_left_out_not_counted_as_nan():
    random = runs_table([1.0, 1.2, 0.9], [5.0, 6.0, 5.5], [79, 81, 78], [50, 55, 52])
    hardest = random.assign(setting="hardest", split="hardest 10%")
    scrub = random[random["method"] == "natmu"].assign(method="scrub", avg_gap=[2.0, 2.5, 2.2])
    table = claims_table(pd.concat([random, hardest[hardest["method"] != "scrub"], scrub]))
    everyone = table.iloc[1]
    assert everyone["evidence"].startswith("2 of 2 (setting, rival) pairs")  # rl and scrub; the hardest apart
    assert "nan" not in everyone["where it fails"] and everyone["verdict"] == "holds"
    hard = table[table["claim"].str.contains("hardest")].iloc[0]
    assert hard["evidence"].startswith("1 of 1") and hard["verdict"] == "holds"  # rl only: scrub did not run there


def test_the_table_is_the_same_in_every_process():
    """Its text may not follow Python's per-process string hashing (set order): same runs, same table."""
    script = """
import pandas as pd
from nmu.claims import claims_table
rows = [{"dataset": "cifar10", "setting": "random", "split": "random 10%", "exp_seed": s, "seed": 0,
         "method": m, "avg_gap": g + s / 10, "acc_forget": 80.0, "mia_entropy": 60.0, "rte_vs_retrain": 0.1}
        for s in range(3) for m, g in [("retrain", 0), ("natmu", 5)] + [(r, 1) for r in "abcdefgh"]]
print(claims_table(pd.DataFrame(rows)).iloc[1]["where it fails"])
"""
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(outputs) == 1 and " vs a " in outputs.pop()


def grid(**gaps):
    """A robustness common grid: per method, its Avg. Gap at the factors 1/3, 1, 3."""
    return pd.DataFrame([{"method": m, "factor": f, "avg_gap": g} for m, values in gaps.items()
                         for f, g in zip((1 / 3, 1.0, 3.0), values)])


def test_robustness_ranks_every_method_by_its_mean_over_the_common_grid():
    table = robustness(grid(natmu=(1, 2, 3), rl=(0.5, 5, 9), ssd=(0, 0, 0))).set_index("method")
    assert table.loc["natmu", "mean"] == 2 and table.loc["natmu", "worst"] == 3
    assert table.loc["natmu", "rank_all"] == 2 and table.loc["natmu", "rank_relabeling"] == 1
    assert pd.isna(table.loc["ssd", "rank_relabeling"])  # not a relabeling method
    runs = runs_table([1.0] * 3, [2.0] * 3, [80] * 3, [80] * 3)
    row = claims_table(runs, grid(natmu=(1, 2, 3), rl=(0.5, 5, 9), ssd=(0, 0, 0))).set_index("claim").filter(
        like="Robust", axis=0).iloc[0]
    assert row["verdict"] == "partly" and row["where it fails"] == "ssd 0.00"
    best = claims_table(runs, grid(natmu=(1, 1, 1), rl=(0.5, 5, 9))).set_index("claim").filter(like="Robust", axis=0)
    assert best.iloc[0]["verdict"] == "holds"
    failed = claims_table(runs, grid(natmu=(1, 1, float("nan")), rl=(4, 5, 9))).set_index("claim").filter(
        like="Robust", axis=0).iloc[0]
    assert failed["verdict"] == "does not" and "worst failed" in failed["evidence"]


def test_over_forgetting_is_how_far_below_the_retrained_model_a_run_lands():
    runs = runs_table([1.0] * 3, [2.0] * 3, [79, 81, 78], [50, 55, 52])
    scored = over_forgetting_scores(runs).set_index(["exp_seed", "method"])
    # rl: Acc D_f 30 below retrain's and MIA 20 below (seed 0): (30 + 20) / 2; natmu 1 below on D_f, 1 above on MIA
    assert scored.loc[(0, "rl"), "over_forgetting"] == 25 and scored.loc[(0, "rl"), "under_forgetting"] == 0
    assert scored.loc[(0, "natmu"), "over_forgetting"] == 0.5 and scored.loc[(0, "natmu"), "under_forgetting"] == 0.5
    barely = runs_table([1.0] * 3, [2.0] * 3, [79, 81, 78], [95, 96, 97]).assign(mia_entropy=60.0)
    assert (over_forgetting(barely)["diff"] > 0).all()  # a rival that barely forgets over-forgets less than NatMU
    profile = forgetting_profile(runs).set_index("method")
    assert profile.loc["rl", "forgetting_achieved"] == 2.0 and profile.loc["rl", "over_forgetting"] > 20


def test_each_setting_gets_its_own_verdicts():
    random = runs_table([1.0, 1.2, 0.9], [5.0, 6.0, 5.5], [79, 81, 78], [50, 55, 52])
    other = runs_table([5.0, 6.0, 5.5], [1.0, 1.2, 0.9], [79, 81, 78], [50, 55, 52]).assign(split="random 1%")
    table = per_setting(pd.concat([random, other], ignore_index=True)).set_index("split")
    assert table.loc["random 10%", "closest (relabeling)"] == "holds"
    assert table.loc["random 1%", "closest (relabeling)"] == "does not"
    assert table.loc["random 1%", "natmu forgetting_achieved"] == pytest.approx(0.9)


def test_the_committed_quick_runs_with_natmu_failing_class_wise_say_so():
    """Failed NatMU runs used to drop out of the pairs: the headline went from "does not" to "partly",
    "where it fails: none"."""
    from conftest import REPO

    folder = REPO / "results" / "quick"
    runs = pd.concat([pd.read_csv(folder / nb / "runs.csv") for nb in ("sample_wise", "hardest", "class_wise")],
                     ignore_index=True)
    failed = (runs["method"] == "natmu") & runs["setting"].isin(["class", "subclass"])
    metrics = [c for c in runs.columns if runs[c].dtype.kind == "f" and c not in ("train_size", "exp_seed", "seed")]
    unchanged = claims_table(runs)
    runs.loc[failed, metrics] = float("nan")
    runs.loc[failed, "failed"] = "NonFiniteLossError: the loss is nan"
    table = claims_table(runs)
    assert list(table["verdict"]) == ["does not"] * 3 + [unchanged.iloc[3]["verdict"], "does not"]  # hardest: no class
    assert table.iloc[0]["where it fails"].startswith("cifar100 full class 'rocket': NatMU failed in 3 experiment seed(s); "
                                                      "cifar20 sub-class 'rocket': NatMU failed in 3")
    assert "NatMU failed in 6 of 24" in table.iloc[-1]["evidence"]


def test_one_experiment_seed_gives_no_verdict_from_intervals():
    table = claims_table(runs_table([1.0, 1.2, 0.9], [5.0, 6.0, 5.5], [79, 81, 78], [50, 55, 52]).query("exp_seed == 0"))
    assert list(table["verdict"][:3]) == ["not measured (n = 1)"] * 3 and table.iloc[-1]["verdict"] == "holds"


def test_the_readme_states_the_verdicts_the_committed_claims_notebook_wrote():
    """The README's claims tables (pooled, then per setting) are the regenerated claims notebook's, row for row."""
    from conftest import REPO

    text = (REPO / "README.md").read_text().split("## Claims", 1)[1].split("\n## ", 1)[0]
    tables = [[[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
              for block in text.split("\n\n") if block.startswith("| ")]
    pooled, by_setting = tables
    folder = REPO / "results" / "quick" / "claims"
    assert [row[1] for row in pooled] == list(pd.read_csv(folder / "claims.csv")["verdict"])
    expected = pd.read_csv(folder / "claims_per_setting.csv")
    columns = ["closest (relabeling)", "closest (all baselines)", "less over-forgetting"]
    assert [row[1:4] for row in by_setting] == expected[columns].values.tolist()
    assert [float(row[4]) for row in by_setting] == list(expected["natmu avg_gap"].round(2))
