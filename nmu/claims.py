"""The paper's claims, checked against the runs of the comparison notebooks.

Each function takes the ``runs`` tables the notebooks write (``results/<profile>/<notebook>/runs.csv``)
and returns the evidence table behind one claim; :func:`verdict` turns paired comparisons into
"holds" / "partly" / "does not", by one rule for every claim, pooled over the random, full-class and
sub-class settings (:func:`claims_table`) and per setting (:func:`per_setting`); the hardest samples,
which the quick original mostly never fitted, are judged apart:

- **does not**: a NatMU run failed (diverged) in some setting, or some rival is better than NatMU
  in some setting with its CI excluding 0, or NatMU is better on average in at most half of the
  (setting, rival) pairs;
- **not measured (n = k)**: some pair has fewer than 2 experiment seeds with a result for both
  (no confidence interval);
- **holds**: NatMU is better than every rival in every setting, each difference's 95 % CI
  excluding 0 (better = lower, for gaps to the retrained model);
- **partly**: anything in between (NatMU better on average in most pairs, not all resolved).

Over-forgetting is judged with signed quantities: how far below the retrained model's values a run
lands on the Avg. Gap's columns (:func:`over_forgetting_scores`), so a method that barely forgets
scores 0 there, and every table carries ``forgetting_achieved`` (how much of the original-to-retrain
drop of Acc D_f a run made). Two claims are not comparisons of paired runs and have rules of their
own: robustness to hyperparameters, from the ``robustness`` notebook's common relative grid (each
method's learning rate x 1/3, 1, 3 around its own preset, one experiment): holds if NatMU's mean Avg.
Gap over it is the lowest of all methods, partly if the lowest of the relabeling family only, else
(or with a failed NatMU run) does not; and run time (NatMU at most 10 % of the retrain's time in
every experiment: holds; 50 % or more in some, or a failed NatMU run: does not; else partly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nmu.metrics import GAP_COLUMNS, REFERENCES
from nmu.stats import gaps_to_retrain, paired, per_experiment, summarize

RELABELING = ("rl", "salun", "bs")
"""The relabeling methods NatMU is proposed against (docs/method.md): each gives D_f wrong labels."""


def verdict(pairs: pd.DataFrame) -> str:
    """The claim's verdict from :func:`nmu.stats.paired` rows of NatMU minus its rivals (lower = better)."""
    if pairs.empty:
        return "not measured"
    if (pairs["failed"] > 0).any():
        return "does not"
    if (pairs["n"] < 2).any():
        return f"not measured (n = {int(pairs['n'].min())})"
    resolved_better = (pairs["ci_high"] < 0).all()
    worse = (pairs["ci_low"] > 0).any()
    ahead = (pairs["diff"] < 0).mean()
    if resolved_better:
        return "holds"
    if worse or ahead <= 0.5:
        return "does not"
    return "partly"


def _where_not(pairs: pd.DataFrame) -> str:
    """The settings where NatMU failed, then the (setting, rival) pairs where NatMU is not ahead on
    average (the unresolved ones it leads are counted in the evidence, not listed)."""
    failed = pairs[pairs["failed"] > 0].groupby(["dataset", "split"], sort=False)["failed"].max()
    lines = [f"{dataset} {split}: NatMU failed in {k} experiment seed(s)" for (dataset, split), k in failed.items()]
    lines += [f"{r.dataset} {r.split} vs {r.rival} ({_difference(r)})"
              for r in pairs[~(pairs["diff"] < 0) & (pairs["failed"] == 0)].itertuples()]
    return "; ".join(lines) or "none"


def _difference(pair) -> str:
    """A paired difference with its CI, or why there is none."""
    if pair.n == 0:
        return f"no experiment seed where both have a result; {pair.rival_failed} failed for the rival"
    if pair.n == 1:
        return f"{pair.diff:+.2f}, one experiment seed"
    return f"{pair.diff:+.2f} [{pair.ci_low:+.2f}, {pair.ci_high:+.2f}]"


def closest_to_retraining(runs: pd.DataFrame, rivals: Sequence[str] = RELABELING) -> pd.DataFrame:
    """NatMU minus each rival in Avg. Gap, per setting (paired by experiment seed)."""
    return paired(runs, "natmu", "avg_gap", [r for r in rivals if r in set(runs["method"])])


def over_forgetting_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``over_forgetting`` and ``under_forgetting``: the mean, over the setting's Avg. Gap
    columns (:data:`nmu.metrics.GAP_COLUMNS`), of how far the run lands below (over) or above (under)
    the retrained model of the same setting and experiment seed, in points; their sum is the Avg. Gap."""
    parts = []
    for kind, part in runs.groupby("setting", sort=False):
        columns = [c for c in GAP_COLUMNS[kind] if c in part]
        diffs = gaps_to_retrain(part, columns, signed=True)[[f"diff_{c}" for c in columns]]
        parts.append(part.assign(over_forgetting=(-diffs).clip(lower=0).mean(axis=1),
                                 under_forgetting=diffs.clip(lower=0).mean(axis=1)))
    return pd.concat(parts).loc[runs.index]


def over_forgetting(runs: pd.DataFrame, rivals: Sequence[str] = RELABELING) -> pd.DataFrame:
    """NatMU minus each rival in ``over_forgetting`` (:func:`over_forgetting_scores`), per setting."""
    present = [r for r in rivals if r in set(runs["method"])]
    return paired(over_forgetting_scores(runs), "natmu", "over_forgetting", present)


def forgetting_profile(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting and method, mean over experiment seeds: over- and under-forgetting and the forgetting
    achieved, so that a reader sees which method over-forgets and which barely forgets."""
    metrics = ["over_forgetting", "under_forgetting", "forgetting_achieved", "avg_gap"]
    scored = over_forgetting_scores(runs)
    return summarize(scored, [m for m in metrics if m in scored])


def run_time(runs: pd.DataFrame) -> pd.DataFrame:
    """NatMU's run time as a fraction of the retrain's, per setting: mean and 95 % CI over experiment seeds."""
    summary = summarize(runs[runs["method"] == "natmu"], ["rte_vs_retrain"])
    return summary.drop(columns="method").rename(columns={"rte_vs_retrain": "mean", "rte_vs_retrain_ci": "ci"})


def robustness(grid: pd.DataFrame, rivals: Sequence[str] = RELABELING) -> pd.DataFrame:
    """From the ``robustness`` notebook's common grid (one row per method and learning-rate factor):
    per method, the mean and the worst Avg. Gap over its factors (a failed run: infinite), how many
    failed, and its rank by mean among all methods and among NatMU and ``rivals``."""
    gaps = grid.assign(avg_gap=grid["avg_gap"].fillna(np.inf))
    table = gaps.groupby("method", sort=False)["avg_gap"].agg(
        mean="mean", worst="max", points="size", failed=lambda g: int(np.isinf(g).sum())).reset_index()
    table["rank_all"] = table["mean"].rank(method="min").astype(int)
    family = table["method"].isin(["natmu", *rivals])
    table.loc[family, "rank_relabeling"] = table.loc[family, "mean"].rank(method="min")
    return table


def per_setting(runs: pd.DataFrame) -> pd.DataFrame:
    """The comparison claims setting by setting: per setting, the verdict of each (by :func:`verdict` on
    that setting's pairs alone), NatMU's mean Avg. Gap and forgetting achieved."""
    everyone = [m for m in runs["method"].unique() if m not in (*REFERENCES, "natmu")]
    rows = []
    for (dataset, split), part in runs.groupby(["dataset", "split"], sort=False):
        natmu = summarize(part[part["method"] == "natmu"], [m for m in ("avg_gap", "forgetting_achieved") if m in part])
        rows.append({"dataset": dataset, "split": split,
                     "closest (relabeling)": verdict(closest_to_retraining(part)),
                     "closest (all baselines)": verdict(closest_to_retraining(part, everyone)),
                     "less over-forgetting": verdict(over_forgetting(part)),
                     "natmu avg_gap": natmu["avg_gap"].iloc[0] if len(natmu) else np.nan,
                     "natmu forgetting_achieved": natmu.get("forgetting_achieved", pd.Series([np.nan])).iloc[0]
                     if len(natmu) else np.nan})
    return pd.DataFrame(rows)


def claims_table(comparison_runs: pd.DataFrame, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim of the paper: the verdict, the evidence in numbers and where it fails.
    ``comparison_runs``: the runs of sample_wise, hardest and class_wise, concatenated (the comparison
    claims pool the random, full-class and sub-class settings; the hardest samples are a row apart);
    ``grid``: the ``robustness`` notebook's common grid, for the robustness claim."""
    hardest = comparison_runs["setting"] == "hardest"
    runs = comparison_runs[~hardest]
    everyone = [m for m in runs["method"].unique() if m not in (*REFERENCES, "natmu")]
    rows = [_paired_claim("NatMU is closest to retraining among relabeling methods (Avg. Gap)",
                          closest_to_retraining(runs)),
            _paired_claim("... and among all baselines (FT, GA, l1-sparse, SCRUB, SSD, BadTeacher, NG+, SFR-on too)",
                          closest_to_retraining(runs, everyone)),
            _paired_claim("Less over-forgetting than relabeling methods: lands less far below the retrained model "
                          "(Acc D_f, D_r, D_t or D_rt, MIA)", over_forgetting(runs))]
    if hardest.any():
        rival = [m for m in comparison_runs[hardest]["method"].unique() if m not in (*REFERENCES, "natmu")]
        rows.append(_paired_claim("Closest to retraining on the hardest samples (apart: the quick original never "
                                  "fitted most of them, see hardest/)",
                                  closest_to_retraining(comparison_runs[hardest], rival)))
    if grid is not None and len(grid):
        rows.append(_robustness_claim(robustness(grid)))
    times = run_time(comparison_runs)  # (every setting: run time does not depend on what the original fitted)
    if len(times):
        rows.append(_run_time_claim(comparison_runs, times))
    return pd.DataFrame(rows)


def _paired_claim(claim: str, pairs: pd.DataFrame) -> dict:
    """A claims-table row from paired comparisons: :func:`verdict`, the counts behind it, the failures."""
    seeds = int(pairs["seeds"].max()) if len(pairs) else 0
    return {"claim": claim, "verdict": verdict(pairs),
            "evidence": f"{int((pairs['ci_high'] < 0).sum())} of {len(pairs)} (setting, rival) pairs won with the 95 % "
                        f"CI of the paired difference below 0; NatMU ahead on average in {int((pairs['diff'] < 0).sum())}; "
                        f"experiment seeds per setting: {seeds}",
            "where it fails": _where_not(pairs)}


def _robustness_claim(table: pd.DataFrame) -> dict:
    """The robustness row of :func:`claims_table` (``table``: :func:`robustness`)."""
    natmu = table.set_index("method").loc["natmu"]
    failed = natmu["failed"] > 0
    verdict_ = "does not" if failed else "holds" if natmu["rank_all"] == 1 else \
        "partly" if natmu["rank_relabeling"] == 1 else "does not"
    ahead = table[table["mean"] < natmu["mean"]]
    return {"claim": "Robust to its hyperparameters: Avg. Gap with the learning rate x 1/3, 1, 3 around each method's "
                     "preset (one experiment, no interval)",
            "verdict": verdict_,
            "evidence": f"NatMU mean {_gap(natmu['mean'])} / worst {_gap(natmu['worst'])} over {natmu['points']} points: "
                        f"rank {natmu['rank_all']} of {len(table)} methods, {int(natmu['rank_relabeling'])} of "
                        f"{int(table['rank_relabeling'].notna().sum())} in the relabeling family",
            "where it fails": "; ".join(f"{r.method} {_gap(r.mean)}" for r in ahead.itertuples())
                              or ("NatMU failed" if failed else "none")}


def _gap(value: float) -> str:
    return f"{value:.2f}" if np.isfinite(value) else "failed"


def _run_time_claim(comparison_runs: pd.DataFrame, times: pd.DataFrame) -> dict:
    """The run-time row of :func:`claims_table` (``times``: :func:`run_time`)."""
    overall = per_experiment(comparison_runs[comparison_runs["method"] == "natmu"], ["rte_vs_retrain"])
    share = overall["rte_vs_retrain"].to_numpy(dtype=float)
    share, failed = share[np.isfinite(share)], int((overall["failed"] > 0).sum())
    if failed or not len(share):
        verdict_ = "does not" if failed else "not measured"
    else:
        verdict_ = "holds" if share.max() <= 0.1 else "does not" if share.max() >= 0.5 else "partly"
    evidence = (f"NatMU / retrain time: {share.mean() * 100:.0f} % on average (range {share.min() * 100:.0f}-"
                f"{share.max() * 100:.0f} % over {len(share)} experiments and settings)" if len(share) else
                "no NatMU run finished")
    return {"claim": "Run time a small fraction of retraining (paper: about 5 % of a 100-epoch retrain)",
            "verdict": verdict_, "evidence": evidence + (f"; NatMU failed in {failed} of {len(overall)}" if failed else ""),
            "where it fails": "; ".join([f"{r.dataset} {r.split}: NatMU failed in {r.failed} experiment seed(s)"
                                         for r in times.itertuples() if r.failed]
                                        + [f"{r.dataset} {r.split}: {r.mean * 100:.0f} %" for r in times.itertuples()
                                           if r.mean > 0.1]) or "none"}

