"""The package's figures, shared by the notebooks (each returns a matplotlib Figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from nmu.stats import per_experiment, summarize
from nmu.unlearn import METHODS

LABELS = {
    "acc_test": "Acc D_t (%)", "acc_retain": "Acc D_r (%)", "acc_forget": "Acc D_f (%)",
    "acc_test_retain": "Acc D_rt (%)", "acc_test_forget": "Acc D_ft (%)",
    "mia_entropy": "MIA entropy (% of D_f called member)",
    "mia_svc_forget_efficacy": "SVC forget efficacy (%)", "mia_loss_attack_acc": "Loss-attack accuracy",
    "kl_forget": "KL_avg on D_f (nats)", "kl_test": "KL_avg on D_t (nats)", "avg_gap": "Avg. Gap (points)",
    "seconds": "Run time (s)", "rte_vs_retrain": "Run time / retrain time",
}
FIXED = {"retrain": "#4d4d4d", "original": "#b0b0b0", "natmu": "#d62728"}


def method_colors() -> dict[str, str]:
    """One colour per method, the same in every figure: the reference rows grey, NatMU red, the other
    registered methods in registry order from a palette without greys or NatMU's red."""
    tab20 = sns.color_palette("tab20", n_colors=20).as_hex()
    taken = set(FIXED.values()) | {"#7f7f7f", "#c7c7c7", "#ff9896"}  # greys and light red
    palette = [c for c in tab20[0::2] + tab20[1::2] if c not in taken]  # the dark shades first
    others = [m for m in METHODS if m not in FIXED]
    return FIXED | {m: palette[i % len(palette)] for i, m in enumerate(others)}


def _colors(methods: list[str]) -> list[str]:
    colors = method_colors()
    return [colors.get(m, "#1f77b4") for m in methods]


def spread_label(table: pd.DataFrame, seeds=None) -> str:
    """What the error bars of a summary over experiment seeds show: a 95 % CI, or nothing with one seed
    (named when ``seeds``, the experiment seeds of the table, holds one)."""
    n = table["n"].max() if "n" in table else 1
    if n > 1:
        return "mean ± 95 % CI over experiment seeds"
    seeds = sorted({int(s) for s in seeds}) if seeds is not None else []
    return f"experiment seed {seeds[0]}, no interval" if len(seeds) == 1 else "one experiment seed, no interval"


def experiment_title(exp, split=None, unlearn_seed: int | None = None) -> str:
    """What a figure of one experiment shows, for its title: dataset / architecture, the forget split
    (if given), the experiment seed (init, data order and split seeds, when they differ) and the
    unlearning seed (if given), e.g. ``cifar10 / smallcnn16, random 10% (class-balanced), experiment seed 0``."""
    seeds = {exp.init_seed, exp.data_seed, exp.split_seed}
    seed = (f"experiment seed {exp.init_seed}" if len(seeds) == 1 else
            f"experiment seeds init/data/split {exp.init_seed}/{exp.data_seed}/{exp.split_seed}")
    parts = [f"{exp.data.name} / {exp.arch}", *([split.description] if split is not None else []), seed,
             *([f"unlearning seed {unlearn_seed}"] if unlearn_seed is not None else [])]
    return ", ".join(parts)


ABSOLUTE = ("avg_gap", "kl_forget", "kl_test", "seconds", "rte_vs_retrain")
"""Metrics shown as they are; the others are shown as the difference to the retrain row."""


def metric_bars(summary: pd.DataFrame, metrics: list[str], by: str = "method",
                panel: str | list[str] | None = None, title: str = "") -> plt.Figure:
    """One bar panel per metric, bars per ``by`` value, one row of panels per value of ``panel``
    (a column such as the split, or several, e.g. ``["dataset", "split"]``). Metrics with a retrain
    target are drawn as ``metric - retrain`` (0 = the target); those in :data:`ABSOLUTE` as they
    are. ``<metric>_ci`` columns (:func:`nmu.stats.summarize`) give error bars: 95 % CIs over experiment seeds."""
    if isinstance(panel, list):
        summary = summary.assign(_panel=summary[panel].astype(str).agg(", ".join, axis=1))
        panel = "_panel"
    rows = list(dict.fromkeys(summary[panel])) if panel else [None]
    fig, axes = plt.subplots(len(rows), len(metrics), figsize=(3.2 * len(metrics), 2.9 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        part = summary if row is None else summary[summary[panel] == row]
        names = part[by].tolist()
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            values = part[metric].to_numpy(dtype=float)
            label = LABELS.get(metric, metric)
            if metric not in ABSOLUTE and "retrain" in names:
                values = values - values[names.index("retrain")]
                label = f"{label.split(' (')[0]} - retrain (points)"
            ci = part.get(f"{metric}_ci")
            has_ci = ci is not None and ci.notna().any()
            ax.bar(range(len(names)), values, color=_colors(names),
                   yerr=np.nan_to_num(ci.to_numpy(dtype=float)) if has_ci else None, capsize=2)
            ax.axhline(0, color="#4d4d4d", lw=0.8)
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
            ax.set_ylabel(label if row is None or c > 0 else f"{row}\n{label}", fontsize=8)
            ax.set_title(LABELS.get(metric, metric).split(" (")[0], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def image_grid(images: list[np.ndarray], titles: list[str], ncols: int, cmap: str | None = None,
               title: str = "") -> plt.Figure:
    """Show HxW or HxWxC images (values in [0, 1]) in a grid with a title each."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.35 * ncols, 1.5 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, t in zip(axes.ravel(), images, titles):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(t, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def to_image(x: torch.Tensor) -> np.ndarray:
    """A uint8 (C, H, W) image tensor as an array for :func:`image_grid`: HxW (one channel) or HxWxC in [0, 1]."""
    x = x.float().div(255)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def class_shares(data, splits: list, exp_seed: int | None = None) -> plt.Figure:
    """Bars of each class's share (%) of the forgetting set of each split (e.g. the hardest samples),
    against the class-balanced share; ``exp_seed``: the experiment the splits are of, for the title."""
    labels = data.train_labels.numpy()
    shares = pd.DataFrame({s.description: np.bincount(labels[s.forget], minlength=data.num_classes) / len(s.forget) * 100
                           for s in splits}, index=data.classes)
    many = data.num_classes > 20  # (CIFAR-100: upright labels, small, so that none overlaps)
    ax = shares.plot.bar(figsize=(max(7.0, 0.16 * data.num_classes), 3.4), rot=90 if many else 45, width=0.8)
    ax.tick_params(axis="x", labelsize=6 if many else 8)
    ax.axhline(100 / data.num_classes, color="grey", ls="--", lw=0.8, label="class-balanced")
    ax.set_ylabel("% of the forgetting set")
    seed = f", experiment seed {exp_seed}" if exp_seed is not None else ""
    ax.set_title(f"{data.name}{seed}: class make-up of the hardest samples")
    ax.legend(fontsize=8)
    return ax.figure


def seed_points(table: pd.DataFrame, metric: str = "avg_gap", panel: str | list[str] = "split",
                title: str = "") -> plt.Figure:
    """One panel per value of ``panel``: ``metric`` of each method, a dot per experiment seed (its
    runs averaged) and the mean with its 95 % confidence interval (:mod:`nmu.stats`). ``title``, what
    the runs are (e.g. their settings and hyperparameters), heads the figure's own title line."""
    per_exp = per_experiment(table, [metric])
    summary = summarize(table, [metric])
    keys = [panel] if isinstance(panel, str) else list(panel)
    label = lambda frame: frame[keys].astype(str).agg(", ".join, axis=1)  # noqa: E731
    per_exp, summary = per_exp.assign(_panel=label(per_exp)), summary.assign(_panel=label(summary))
    panels = list(dict.fromkeys(summary["_panel"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.5, 0.42 * summary["method"].nunique()) * len(panels), 3.2),
                             squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], panels):
        part = summary[summary["_panel"] == name]
        methods = part["method"].tolist()
        colors = _colors(methods)
        for i, (method, color) in enumerate(zip(methods, colors)):
            points = per_exp[(per_exp["_panel"] == name) & (per_exp["method"] == method)][metric].to_numpy(float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(points)), points, s=12, color=color, alpha=0.7, zorder=3)
            row = part.iloc[i]
            ax.errorbar(i + 0.3, row[metric], yerr=np.nan_to_num(row[f"{metric}_ci"]), fmt="_", color="black",
                        ms=10, capsize=3, zorder=4)
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
        ax.grid(axis="y", lw=0.3)
    seeds = table["exp_seed"].unique() if "exp_seed" in table else None
    what = f"{LABELS.get(metric, metric)}: a dot per experiment seed, {spread_label(summary, seeds)}"
    fig.suptitle(f"{title}\n{what}" if title else what, fontsize=10)
    fig.tight_layout()
    return fig


def grid_spread(table: pd.DataFrame, metric: str = "avg_gap", panel: str = "family", title: str = "") -> plt.Figure:
    """A hyperparameter search (:mod:`nmu.search`): one panel per ``panel`` value, a dot per method and
    configuration (``metric`` averaged over the validation experiments), the winner as a star; a
    narrow column means a method that does not depend much on its hyperparameters."""
    per_config = table.groupby([panel, "method", "config"], sort=False)[metric].mean().reset_index()
    values = per_config[metric].replace([np.inf, -np.inf], np.nan).dropna()
    log = bool(len(values)) and (values > 0).all() and values.max() > 10 * values.median()  # one method far off
    panels = list(dict.fromkeys(per_config[panel]))
    methods = list(dict.fromkeys(per_config["method"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.5, 0.45 * len(methods)) * len(panels), 3.2), squeeze=False)
    for ax, name in zip(axes[0], panels):
        for i, (method, color) in enumerate(zip(methods, _colors(methods))):
            values = per_config[(per_config[panel] == name) & (per_config["method"] == method)][metric].to_numpy(float)
            ax.scatter(np.full(len(values), i), values, s=14, color=color, alpha=0.7, zorder=3)
            if np.isfinite(values).any():
                ax.scatter([i], [np.nanmin(values)], marker="*", s=80, color=color, edgecolor="black", zorder=4)
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(str(name), fontsize=9)
        ax.set_ylabel(LABELS.get(metric, metric) + (", log scale" if log else ""), fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", lw=0.3)
    fig.suptitle(title or f"{LABELS.get(metric, metric)} of every configuration (star: the one selected)", fontsize=10)
    fig.tight_layout()
    return fig


def paired_forest(pairs: pd.DataFrame, title: str = "") -> plt.Figure:
    """:func:`nmu.stats.paired` rows as a forest plot: per setting, NatMU minus each rival with its
    95 % CI (left of 0: NatMU closer to retraining) and the experiments it won ("failed" where NatMU
    failed in every one)."""
    label = pairs[[k for k in ("dataset", "split") if k in pairs]].astype(str).agg(" ".join, axis=1)
    settings = list(dict.fromkeys(label))
    rivals = list(dict.fromkeys(pairs["rival"]))
    ncols = min(4, len(settings))
    nrows = -(-len(settings) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, nrows * (0.3 * len(rivals) + 1.3)),
                             squeeze=False, sharey=True)
    for ax in axes.flat[len(settings):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, settings):
        part = pairs[label == name].set_index("rival").reindex(rivals)
        y = np.arange(len(rivals))
        ax.errorbar(part["diff"], y, xerr=[part["diff"] - part["ci_low"], part["ci_high"] - part["diff"]],
                    fmt="o", color="#d62728", ms=4, capsize=2)
        for yi, row in zip(y, part.itertuples()):  # wins (or "failed": no difference), just right of the panel
            text = f"{int(row.wins)}/{int(row.n)}" if np.isfinite(row.diff) else "failed" if row.failed > 0 else ""
            ax.annotate(text, (1.02, yi), xycoords=("axes fraction", "data"), fontsize=7, ha="left", va="center",
                        color="#4d4d4d", annotation_clip=False)
        ax.axvline(0, color="#4d4d4d", lw=0.8)
        ax.set_yticks(y, rivals, fontsize=8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(f"natmu - rival, {LABELS.get(pairs['metric'].iloc[0], pairs['metric'].iloc[0])}\n"
                      "(negative: NatMU closer to retraining)", fontsize=7)
    axes[0, 0].invert_yaxis()  # (once: the panels share it) the first rival on top
    spread = "mean, 95 % CI" if pairs["n"].max() > 1 else "one experiment seed, no interval"
    fig.suptitle(title or f"NatMU minus each method, paired by experiment seed ({spread}; wins/experiments)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def factor_label(factor: float) -> str:
    """A multiplier as people write it: x3, x1, x1/3."""
    return f"x{factor:.3g}" if factor >= 1 else f"x1/{1 / factor:.3g}"


def robustness_curves(common: pd.DataFrame, untouched: float, ax: plt.Axes | None = None) -> plt.Figure:
    """The common robustness grid: per method, Avg. Gap against the factor its learning rate (SSD: alpha)
    is multiplied by around its preset, with the untouched original's Avg. Gap for reference; a method
    far off puts the axis on a log scale."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    colors = method_colors()
    for method, part in common.groupby("method", sort=False):
        ax.plot(part["factor"], part["avg_gap"], marker="o", lw=1.2, color=colors.get(method, "#1f77b4"), label=method)
    ax.axhline(untouched, color="grey", ls="--", lw=0.8, label="original (no unlearning)")
    values = common["avg_gap"].replace([np.inf, -np.inf], np.nan).dropna()
    if len(values) and (values > 0).all() and values.max() > 5 * values.median():
        ax.set_yscale("log")
    ax.set_xscale("log")
    factors = sorted(common["factor"].unique())
    ax.set_xticks(factors, [factor_label(f) for f in factors])
    ax.xaxis.set_minor_locator(NullLocator())  # the log axis's own minor labels would overprint the factors
    ax.set_xlabel("learning rate (SSD: alpha) relative to the method's preset")
    ax.set_ylabel("Avg. Gap (points)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("every method around its own preset", fontsize=9)
    return ax.figure
