"""The package's figures, shared by the notebooks (each returns a matplotlib Figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

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
    base = sns.color_palette("tab10", n_colors=10).as_hex()
    others = iter(c for c in base if c not in PALETTE.values() and c != "#d62728")
    return [PALETTE.get(m) or next(others, "#1f77b4") for m in methods]


ABSOLUTE = ("avg_gap", "kl_forget", "kl_test", "seconds", "rte_vs_retrain")
"""Metrics shown as they are; the others are shown as the difference to the retrain row."""


def metric_bars(summary: pd.DataFrame, metrics: list[str], by: str = "method",
                panel: str | list[str] | None = None, title: str = "") -> plt.Figure:
    """One bar panel per metric, bars per ``by`` value, one row of panels per value of ``panel``
    (a column such as the split, or several, e.g. ``["dataset", "split"]``). Metrics with a retrain
    target are drawn as ``metric - retrain`` (0 = the target); those in :data:`ABSOLUTE` as they
    are. ``<metric>_std`` columns give error bars."""
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
            std = part.get(f"{metric}_std")
            has_std = std is not None and std.notna().any()
            ax.bar(range(len(names)), values, color=_colors(names),
                   yerr=np.nan_to_num(std.to_numpy(dtype=float)) if has_std else None, capsize=2)
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
