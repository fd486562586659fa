"""The paper's claims, checked against the runs of the comparison notebooks.

Each function takes the ``runs`` tables the notebooks write (``results/<profile>/<notebook>/runs.csv``)
and returns the evidence table behind one claim; :func:`verdict` turns paired comparisons into
"holds" / "partly" / "does not", by one rule for every claim:

- **does not**: a NatMU run failed (diverged) in some setting, or some rival is better than NatMU
  in some setting with its CI excluding 0, or NatMU is better on average in at most half of the
  (setting, rival) pairs;
- **not measured (n = k)**: some pair has fewer than 2 experiment seeds with a result for both
  (no confidence interval);
- **holds**: NatMU is better than every rival in every setting, each difference's 95 % CI
  excluding 0 (better = lower, for gaps to the retrained model);
- **partly**: anything in between (NatMU better on average in most pairs, not all resolved).

Two claims are not comparisons between methods and have rules of their own: robustness to
hyperparameters (NatMU's median Avg. Gap over its search grid, a configuration with a failed run
counting as the worst, is the lowest of its family in every family: holds; in some: partly; a
failed NatMU configuration: does not) and run time (NatMU at most 10 % of the retrain's time in
every experiment: holds; 50 % or more in some, or a failed NatMU run: does not; else partly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nmu.metrics import REFERENCES
from nmu.splits import SAMPLE_WISE
from nmu.stats import config_means, gaps_to_retrain, paired, per_experiment, summarize

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


def over_forgetting(runs: pd.DataFrame, rivals: Sequence[str] = RELABELING) -> pd.DataFrame:
    """NatMU minus each rival in |Acc D_f - retrain| and |MIA - retrain| (sample-wise settings, where
    the retrained model still classifies much of D_f correctly), per setting."""
    sample_wise = runs[runs["setting"].isin(SAMPLE_WISE)]
    gaps = gaps_to_retrain(sample_wise, ["acc_forget", "mia_entropy"])
    present = [r for r in rivals if r in set(runs["method"])]
    return pd.concat([paired(gaps, "natmu", f"gap_{m}", present) for m in ("acc_forget", "mia_entropy")],
                     ignore_index=True)


def run_time(runs: pd.DataFrame) -> pd.DataFrame:
    """NatMU's run time as a fraction of the retrain's, per setting: mean and 95 % CI over experiment seeds."""
    summary = summarize(runs[runs["method"] == "natmu"], ["rte_vs_retrain"])
    return summary.drop(columns="method").rename(columns={"rte_vs_retrain": "mean", "rte_vs_retrain_ci": "ci"})


def hyperparameter_robustness(search: pd.DataFrame, rivals: Sequence[str] = RELABELING) -> pd.DataFrame:
    """From a search table (:mod:`nmu.search`): per family and method, the median and worst Avg.
    Gap over its configurations (each averaged over the validation experiments; one with a failed
    run is infinite, the worst), the configurations that failed and NatMU's rank by median among
    NatMU and ``rivals``."""
    per_config = config_means(search)
    table = per_config.groupby(["family", "method"], sort=False)["avg_gap"].agg(
        median="median", worst="max", best="min", configs="size", failed=lambda g: int(np.isinf(g).sum())
    ).reset_index()
    table = table[table["method"].isin(["natmu", *rivals])]
    table["rank_by_median"] = table.groupby("family")["median"].rank(method="min").astype(int)
    return table


def claims_table(comparison_runs: pd.DataFrame, search: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim of the paper: the verdict, the evidence in numbers and where it fails.
    ``comparison_runs``: the runs of sample_wise, hardest and class_wise, concatenated."""
    rows = []
    closest = closest_to_retraining(comparison_runs)
    seeds = int(closest["seeds"].max()) if len(closest) else 0
    rows.append({"claim": "NatMU is closest to retraining among relabeling methods (Avg. Gap)",
                 "verdict": verdict(closest),
                 "evidence": f"{int((closest['ci_high'] < 0).sum())} of {len(closest)} (setting, rival) pairs won with "
                             f"the 95 % CI of the paired difference below 0; NatMU ahead on average in "
                             f"{int((closest['diff'] < 0).sum())}; experiment seeds per setting: {seeds}",
                 "where it fails": _where_not(closest)})
    everyone = closest_to_retraining(comparison_runs, [m for m in comparison_runs["method"].unique()
                                                       if m not in (*REFERENCES, "natmu")])
    rows.append({"claim": "... and among all baselines (FT, GA, l1-sparse, SCRUB, SSD, BadTeacher, NG+, SFR-on too)",
                 "verdict": verdict(everyone),
                 "evidence": f"{int((everyone['ci_high'] < 0).sum())} of {len(everyone)} pairs won with the CI below 0; "
                             f"ahead on average in {int((everyone['diff'] < 0).sum())}",
                 "where it fails": _where_not(everyone)})
    over = over_forgetting(comparison_runs)
    rows.append({"claim": "Less over-forgetting: Acc D_f and MIA nearer the retrained model's than relabeling "
                          "methods' (sample-wise settings)",
                 "verdict": verdict(over),
                 "evidence": f"{int((over['ci_high'] < 0).sum())} of {len(over)} (setting, rival, metric) pairs won "
                             f"with the CI below 0; ahead on average in {int((over['diff'] < 0).sum())}",
                 "where it fails": _where_not(over.assign(rival=over["rival"] + " " + over["metric"]))})
    if search is not None and len(search):
        robust = hyperparameter_robustness(search)
        natmu = robust[robust["method"] == "natmu"]
        best_everywhere = (natmu["rank_by_median"] == 1).all()
        rows.append({"claim": "Robust to its hyperparameters (Avg. Gap over each method's search grid, "
                              "validation experiments)",
                     "verdict": "does not" if (natmu["failed"] > 0).any() else "holds" if best_everywhere else
                                "partly" if (natmu["rank_by_median"] == 1).any() else "does not",
                     "evidence": "; ".join(f"{r.family}: NatMU median {_gap(r.median)} / worst {_gap(r.worst)} over "
                                           f"{r.configs} configurations ({r.failed} failed), rank {r.rank_by_median} of "
                                           f"{1 + len(RELABELING)} by median" for r in natmu.itertuples()),
                     "where it fails": "; ".join(f"{r.family}" for r in natmu.itertuples()
                                                 if r.rank_by_median != 1 or r.failed) or "none"})
    times = run_time(comparison_runs)
    if len(times):
        rows.append(_run_time_claim(comparison_runs, times))
    return pd.DataFrame(rows)


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

