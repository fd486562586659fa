"""The package's figures, shared by the notebooks (each returns a matplotlib Figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from nmu.stats import per_experiment, summarize

LABELS = {
    "acc_test": "Acc D_t (%)", "acc_retain": "Acc D_r (%)", "acc_forget": "Acc D_f (%)",
    "acc_test_retain": "Acc D_rt (%)", "acc_test_forget": "Acc D_ft (%)",
    "mia_entropy": "MIA entropy (% of D_f called member)",
    "mia_svc_forget_efficacy": "SVC forget efficacy (%)", "mia_loss_attack_acc": "Loss-attack accuracy",
    "kl_forget": "KL_avg on D_f (nats)", "kl_test": "KL_avg on D_t (nats)", "avg_gap": "Avg. Gap (points)",
    "seconds": "Run time (s)", "rte_vs_retrain": "Run time / retrain time",
}
PALETTE = {"retrain": "#4d4d4d", "original": "#b0b0b0", "natmu": "#d62728"}


def _colors(methods: list[str]) -> list[str]:
    """A colour per method: :data:`PALETTE`'s, then tab10's others in turn, then tab20's light shades
    (no red but NatMU's)."""
    base = sns.color_palette("tab10", n_colors=10).as_hex()
    base += [c for c in sns.color_palette("tab20", n_colors=20).as_hex() if c not in base]
    others = iter(c for c in base if c not in PALETTE.values() and c not in ("#d62728", "#ff9896"))
    return [PALETTE.get(m) or next(others, "#1f77b4") for m in methods]


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


def class_shares(data, splits: list) -> plt.Figure:
    """Bars of each class's share (%) of the forgetting set of each split (e.g. the hardest samples),
    against the class-balanced share."""
    labels = data.train_labels.numpy()
    shares = pd.DataFrame({s.description: np.bincount(labels[s.forget], minlength=data.num_classes) / len(s.forget) * 100
                           for s in splits}, index=data.classes)
    ax = shares.plot.bar(figsize=(max(7, 0.25 * data.num_classes), 3), rot=45)
    ax.axhline(100 / data.num_classes, color="grey", ls="--", lw=0.8, label="class-balanced")
    ax.set_ylabel("% of the forgetting set")
    ax.set_title("class make-up of the hardest samples")
    ax.legend(fontsize=8)
    return ax.figure


def seed_points(table: pd.DataFrame, metric: str = "avg_gap", panel: str | list[str] = "split",
                title: str = "") -> plt.Figure:
    """One panel per value of ``panel``: ``metric`` of each method, a dot per experiment seed (its
    runs averaged) and the mean with its 95 % confidence interval (:mod:`nmu.stats`)."""
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
    fig.suptitle(title or f"{LABELS.get(metric, metric)}: a dot per experiment seed, mean ± 95 % CI", fontsize=10)
    fig.tight_layout()
    return fig


def grid_spread(table: pd.DataFrame, metric: str = "avg_gap", panel: str = "family", title: str = "") -> plt.Figure:
    """A hyperparameter search (:mod:`nmu.search`): one panel per ``panel`` value, a dot per method and
    configuration (``metric`` averaged over the validation experiments), the winner as a star; a
    narrow column means a method that does not depend much on its hyperparameters."""
    per_config = table.groupby([panel, "method", "config"], sort=False)[metric].mean().reset_index()
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
        ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
        ax.grid(axis="y", lw=0.3)
    fig.suptitle(title or f"{LABELS.get(metric, metric)} of every configuration (star: the one selected)", fontsize=10)
    fig.tight_layout()
    return fig


def paired_forest(pairs: pd.DataFrame, title: str = "") -> plt.Figure:
    """:func:`nmu.stats.paired` rows as a forest plot: per setting, NatMU minus each rival with its
    95 % CI (left of 0: NatMU closer to retraining) and the experiments it won."""
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
        for yi, row in zip(y, part.itertuples()):  # wins, just right of the panel
            if np.isfinite(row.diff):
                ax.annotate(f"{int(row.wins)}/{int(row.n)}", (1.02, yi), xycoords=("axes fraction", "data"),
                            fontsize=7, ha="left", va="center", color="#4d4d4d", annotation_clip=False)
        ax.axvline(0, color="#4d4d4d", lw=0.8)
        ax.set_yticks(y, rivals, fontsize=8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(f"natmu - rival, {LABELS.get(pairs['metric'].iloc[0], pairs['metric'].iloc[0])}", fontsize=7)
    axes[0, 0].invert_yaxis()  # (once: the panels share it) the first rival on top
    fig.suptitle(title or "NatMU minus each method, paired by experiment seed (mean, 95 % CI; wins/experiments)",
                 fontsize=9)
    fig.tight_layout()
    return fig
