"""Statistics over experiment seeds: means with 95 % confidence intervals and paired comparisons.

An *experiment seed* (``exp_seed``: the original's initial weights and data order, the random forget
set, hence the retrained model) is the unit of replication; runs that share one are first averaged
(e.g. several unlearning seeds). Intervals are Student-t intervals over the experiment seeds.

    summary = summarize(runs)                     # <metric>, <metric>_ci, n per setting and method
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


def per_experiment(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per setting, method and experiment seed: ``metrics`` averaged over that experiment's
    runs (unlearning seeds). A table without ``exp_seed`` counts as one experiment."""
    table = table if "exp_seed" in table else table.assign(exp_seed=0)
    keys = _setting_keys(table) + ["method", "exp_seed"]
    return table.groupby(keys, sort=False)[list(metrics)].mean().reset_index()


def default_metrics(table: pd.DataFrame) -> list[str]:
    return [c for c in (*METRIC_ORDER, "seconds", "rte_vs_retrain", "avg_gap") if c in table]


def summarize(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per setting and method: the mean over experiment seeds of each metric, its 95 % CI half-width
    (``<metric>_ci``) and the number of experiment seeds ``n``."""
    metrics = list(metrics or default_metrics(table))
    per_exp = per_experiment(table, metrics)
    grouped = per_exp.groupby(_setting_keys(per_exp) + ["method"], sort=False)
    out = grouped[metrics].mean().join(grouped[metrics].agg(ci95).add_suffix("_ci"))
    out["n"] = grouped.size()
    return out[[c for m in metrics for c in (m, f"{m}_ci")] + ["n"]].reset_index()


def gaps_to_retrain(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``table`` with ``gap_<metric>`` = |metric - the retrained model's metric| added, the retrain
    row being that of the same setting and experiment seed."""
    table = table if "exp_seed" in table else table.assign(exp_seed=0)
    keys = _setting_keys(table) + ["exp_seed"]
    gold = table[table["method"] == "retrain"].set_index(keys)[list(metrics)]
    if gold.index.duplicated().any():
        raise ValueError("more than one retrain row for a setting and experiment seed")
    aligned = gold.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy(dtype=float)
    gaps = np.abs(table[list(metrics)].to_numpy(dtype=float) - aligned)
    return table.assign(**{f"gap_{m}": gaps[:, i] for i, m in enumerate(metrics)})


def paired(table: pd.DataFrame, method: str = "natmu", metric: str = "avg_gap",
           against: Sequence[str] | None = None) -> pd.DataFrame:
    """``method`` minus each other method in ``metric`` (lower = better, e.g. Avg. Gap), paired by
    setting and experiment seed: per setting and rival, the mean difference, its 95 % CI, the number
    of experiment seeds ``n`` and ``wins`` (seeds where ``method`` is strictly lower).

    ``against`` (default: every method of the table but the reference rows) picks the rivals. A rival
    with no runs in a setting (e.g. one a notebook does not run there) has no row for that setting.
    """
    per_exp = per_experiment(table, [metric])
    keys = _setting_keys(per_exp)
    if method not in set(per_exp["method"]):
        raise ValueError(f"no {method!r} rows in the table; its methods are {sorted(set(per_exp['method']))}")
    wide = per_exp.pivot_table(index=keys + ["exp_seed"], columns="method", values=metric, sort=False)
    rivals = list(against) if against is not None else [m for m in wide.columns if m not in REFERENCES]
    rivals = [m for m in rivals if m != method]
    missing = [m for m in rivals if m not in wide]
    if missing:
        raise ValueError(f"no rows of {missing} in the table; its methods are {sorted(wide.columns)}")
    rows = []
    for setting, part in wide.groupby(level=keys, sort=False):
        setting = setting if isinstance(setting, tuple) else (setting,)
        for rival in rivals:
            both = part[[method, rival]].dropna()
            diff = (both[method] - both[rival]).to_numpy()
            if not len(diff):
                continue
            half, mean = ci95(diff), float(diff.mean())
            rows.append({**dict(zip(keys, setting)), "method": method, "rival": rival, "metric": metric,
                         "method_value": float(both[method].mean()), "rival_value": float(both[rival].mean()),
                         "diff": mean, "ci_low": mean - half, "ci_high": mean + half,
                         "n": len(diff), "wins": int((diff < 0).sum())})
    return pd.DataFrame(rows, columns=[*keys, "method", "rival", "metric", "method_value", "rival_value", "diff",
                                       "ci_low", "ci_high", "n", "wins"])


def with_ci(summary: pd.DataFrame, metrics: Sequence[str], digits: int = 2) -> pd.DataFrame:
    """``summary`` with each of ``metrics`` as a "mean ± ci" string (just the mean where n = 1)."""
    out = summary.copy()
    for m in metrics:
        out[m] = [f"{v:.{digits}f}" if not np.isfinite(c) else f"{v:.{digits}f} ± {c:.{digits}f}"
                  for v, c in zip(summary[m], summary[f"{m}_ci"])]
    return out.drop(columns=[f"{m}_ci" for m in metrics])
