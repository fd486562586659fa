"""Figures (PNG + PDF), tables (Markdown + CSV) and run manifests for ``results/``.

Notebooks call these so that every output is written the same way: atomically, next to a
manifest that records how it was made (git commit, package versions, device, profile, seeds,
parameters, wall time).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nmu.storage import atomic_write

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn", "papermill")


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.png`` (150 dpi) and ``.pdf``."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{ext}"
        atomic_write(path, lambda tmp, e=ext: fig.savefig(tmp, format=e, dpi=150, bbox_inches="tight"))
        paths.append(path)
    return paths


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str, floatfmt: str = ".2f") -> list[Path]:
    """Save ``df`` as ``<out_dir>/<name>.csv`` (every column, full precision) and ``.md`` (rounded
    with ``floatfmt``, except columns of small values such as learning rates, shown as ``%g``;
    columns holding one value throughout are stated once above the table instead)."""
    csv, md = Path(out_dir) / f"{name}.csv", Path(out_dir) / f"{name}.md"
    atomic_write(csv, lambda tmp: df.to_csv(tmp, index=False))
    constant = [c for c in df.columns if len(df) > 1 and df[c].astype(str).nunique() == 1]
    header = "".join(f"- {c}: {df[c].iloc[0]}\n" for c in constant)
    shown = df.drop(columns=constant)
    formats = ["g" if _small(shown[c]) else floatfmt for c in shown.columns]
    body = shown.to_markdown(index=False, floatfmt=formats)
    atomic_write(md, lambda tmp: tmp.write_text((header + "\n" if header else "") + body + "\n"))
    return [csv, md]


def _small(column: pd.Series) -> bool:
    """A float column with a non-zero value that would print as 0.00."""
    if not pd.api.types.is_float_dtype(column):
        return False
    values = column.dropna().abs()
    return bool(((values > 0) & (values < 0.005)).any())


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        # "dirty" = the code differs from the commit; rewritten outputs under results/ do not count
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)results"], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for pkg in PACKAGES:
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return found


def _device() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


class Manifest:
    """Started at the top of a notebook, written at its end: ``<out_dir>/manifest.json``."""

    def __init__(self, out_dir: str | Path, notebook: str, parameters: dict[str, Any]):
        self.out_dir, self.notebook, self.parameters = Path(out_dir), notebook, parameters
        self.start = time.time()
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, **extra: Any) -> Path:
        body = {"notebook": self.notebook, "parameters": self.parameters, "git_commit": _git_commit(),
                "packages": _versions(), "python": platform.python_version(), "device": _device(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.start)),
                "wall_seconds": round(time.time() - self.start, 1), **extra}
        path = self.out_dir / "manifest.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(body, indent=2, default=str) + "\n"))
        return path
