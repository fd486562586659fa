"""Statistics over experiment seeds: means with 95 % confidence intervals and paired comparisons.

An *experiment seed* (``exp_seed``: the original's initial weights and data order, the random forget
set, hence the retrained model) is the unit of replication; runs that share one are first averaged
(e.g. several unlearning seeds). Intervals are Student-t intervals over the experiment seeds.

A failed run (``run_setting``'s diverged runs: a ``failed`` entry, no metrics) is a result, not a
gap in the table: its experiment counts as failed for that method (no value, even if other
unlearning seeds of it finished), and every table counts the failed experiments beside the others.

    summary = summarize(runs)                     # <metric>, <metric>_ci, n, failed per setting and method
    pairs = paired(runs, "natmu")                 # natmu - each other method, per setting
    headline = with_ci(summary, ["avg_gap"])      # "2.44 ± 0.31" strings for a Markdown table
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from nmu.metrics import METRIC_ORDER, REFERENCES

SETTING_KEYS = ("dataset", "setting", "split")
"""The columns that identify a setting in a runs table (those present are used)."""


def ci95(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the 95 % Student-t confidence interval of the mean of ``values`` (NaN for fewer
    than 2 finite values)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan")
    return float(_scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def _setting_keys(table: pd.DataFrame) -> list[str]:
    return [k for k in SETTING_KEYS if k in table]


def failed_runs(table: pd.DataFrame, metrics: Sequence[str]) -> pd.Series:
    """Which runs of ``table`` failed: a ``failed`` entry, or no finite value in any of ``metrics``."""
    values = table[list(metrics)].to_numpy(dtype=float)
    failed = ~np.isfinite(values).any(axis=1) if values.shape[1] else np.zeros(len(table), dtype=bool)
    if "failed" in table:
        failed |= table["failed"].notna().to_numpy()
    return pd.Series(failed, index=table.index)


def per_experiment(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per setting, method and experiment seed: ``metrics`` averaged over that experiment's
    runs (unlearning seeds), and ``failed``, how many of them failed (:func:`failed_runs`); an
    experiment with a failed run has no values. A table without ``exp_seed`` counts as one experiment."""
    table = table if "exp_seed" in table else table.assign(exp_seed=0)
    keys = _setting_keys(table) + ["method", "exp_seed"]
    grouped = table.assign(failed=failed_runs(table, metrics)).groupby(keys, sort=False)
    out = grouped[list(metrics)].mean()
    out["failed"] = grouped["failed"].sum().astype(int)
    out.loc[out["failed"] > 0, list(metrics)] = np.nan
    return out.reset_index()


def default_metrics(table: pd.DataFrame) -> list[str]:
    return [c for c in (*METRIC_ORDER, "seconds", "rte_vs_retrain", "avg_gap", "forgetting_achieved") if c in table]


def summarize(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per setting and method: the mean over experiment seeds of each metric, its 95 % CI half-width
    (``<metric>_ci``), the number ``n`` of experiment seeds these are over and the number ``failed``
    of experiment seeds with a failed run (:func:`per_experiment`), which they leave out."""
    metrics = list(metrics or default_metrics(table))
    per_exp = per_experiment(table, metrics)
    grouped = per_exp.groupby(_setting_keys(per_exp) + ["method"], sort=False)
    out = grouped[metrics].mean().join(grouped[metrics].agg(ci95).add_suffix("_ci"))
    out["failed"] = grouped["failed"].agg(lambda f: int((f > 0).sum()))
    out["n"] = grouped.size() - out["failed"]
    return out[[c for m in metrics for c in (m, f"{m}_ci")] + ["n", "failed"]].reset_index()


def gaps_to_retrain(table: pd.DataFrame, metrics: Sequence[str], signed: bool = False) -> pd.DataFrame:
    """``table`` with ``gap_<metric>`` = |metric - the retrained model's metric| added (``signed``:
    ``diff_<metric>`` = metric - the retrained model's), the retrain row being that of the same setting
    and experiment seed."""
    table = table if "exp_seed" in table else table.assign(exp_seed=0)
    keys = _setting_keys(table) + ["exp_seed"]
    gold = table[table["method"] == "retrain"].set_index(keys)[list(metrics)]
    if gold.index.duplicated().any():
        raise ValueError("more than one retrain row for a setting and experiment seed")
    aligned = gold.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy(dtype=float)
    diffs = table[list(metrics)].to_numpy(dtype=float) - aligned
    name, values = ("diff", diffs) if signed else ("gap", np.abs(diffs))
    return table.assign(**{f"{name}_{m}": values[:, i] for i, m in enumerate(metrics)})


def paired(table: pd.DataFrame, method: str = "natmu", metric: str = "avg_gap",
           against: Sequence[str] | None = None) -> pd.DataFrame:
    """``method`` minus each other method in ``metric`` (lower = better, e.g. Avg. Gap), paired by
    setting and experiment seed: per setting and rival, the mean difference and its 95 % CI over the
    ``n`` experiment seeds where both have a result, ``wins`` (seeds where ``method`` is strictly
    lower), ``seeds`` (where both were run) and how many of those failed for ``method``
    (``failed``) and for the rival (``rival_failed``, :func:`per_experiment`).

    ``against`` (default: every method of the table but the reference rows) picks the rivals. A rival
    with no runs in a setting (e.g. one a notebook does not run there) has no row for that setting;
    one that ran there has a row even when no seed has two results (its ``diff`` is then NaN).
    """
    per_exp = per_experiment(table, [metric])
    keys = _setting_keys(per_exp)
    if method not in set(per_exp["method"]):
        raise ValueError(f"no {method!r} rows in the table; its methods are {sorted(set(per_exp['method']))}")
    index = keys + ["exp_seed"]
    failures = per_exp.pivot_table(index=index, columns="method", values="failed", sort=False)
    wide = per_exp.pivot_table(index=index, columns="method", values=metric, sort=False).reindex(
        index=failures.index, columns=failures.columns)  # pivot_table drops the all-NaN ones: failed everywhere
    rivals = list(against) if against is not None else [m for m in wide.columns if m not in REFERENCES]
    rivals = [m for m in rivals if m != method]
    missing = [m for m in rivals if m not in wide]
    if missing:
        raise ValueError(f"no rows of {missing} in the table; its methods are {sorted(wide.columns)}")
    rows = []
    for setting, part in wide.groupby(level=keys, sort=False):
        setting = setting if isinstance(setting, tuple) else (setting,)
        failed = failures.loc[part.index]
        for rival in rivals:
            ran = failed[[method, rival]].notna().all(axis=1)
            if not ran.any():
                continue
            both = part.loc[ran, [method, rival]].dropna()
            diff = (both[method] - both[rival]).to_numpy()
            half, mean = (ci95(diff), float(diff.mean())) if len(diff) else (float("nan"), float("nan"))
            rows.append({**dict(zip(keys, setting)), "method": method, "rival": rival, "metric": metric,
                         "method_value": float(both[method].mean()), "rival_value": float(both[rival].mean()),
                         "diff": mean, "ci_low": mean - half, "ci_high": mean + half,
                         "n": len(diff), "wins": int((diff < 0).sum()), "seeds": int(ran.sum()),
                         "failed": int((failed.loc[ran, method] > 0).sum()),
                         "rival_failed": int((failed.loc[ran, rival] > 0).sum())})
    return pd.DataFrame(rows, columns=[*keys, "method", "rival", "metric", "method_value", "rival_value", "diff",
                                       "ci_low", "ci_high", "n", "wins", "seeds", "failed", "rival_failed"])


def config_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per family, method and configuration of a search table, the mean Avg. Gap over the validation
    experiments; infinite (the worst) for a configuration with a failed run."""
    return table.groupby(["family", "method", "config"], sort=False)["avg_gap"].agg(
        lambda x: x.mean() if x.notna().all() else np.inf).reset_index()


def with_ci(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 2) -> pd.DataFrame:
    """``summary`` with each of ``metrics`` as a "mean ± ci" string (just the mean where n = 1),
    followed by "(k failed)" where ``failed`` experiments left it out, and "failed" where no
    experiment has a value."""
    out = summary.copy()
    failed = summary["failed"] if "failed" in summary else pd.Series(0, index=summary.index)
    for m in metrics:
        out[m] = [_cell(v, c, k, digits) for v, c, k in zip(summary[m], summary[f"{m}_ci"], failed)]
    return out.drop(columns=[f"{m}_ci" for m in metrics])


def _cell(value: float, ci: float, failed: int, digits: int) -> str:
    if not np.isfinite(value):
        return "failed" if failed else "-"
    text = f"{value:.{digits}f}" + (f" ± {ci:.{digits}f}" if np.isfinite(ci) else "")
    return text + (f" ({failed} failed)" if failed else "")
