"""Where nmu keeps data and checkpoints, and how it writes them safely.

Everything nmu downloads, decodes or trains lives under one root directory:
``$NMU_DATA`` if set, else ``data/`` at the top of the source checkout (or
``~/.cache/nmu`` when nmu is installed elsewhere). Writes are atomic (temporary
file + rename), so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ENV_VAR = "NMU_DATA"


def data_root() -> Path:
    """The root directory for datasets, decoded caches and checkpoints."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data"
    return Path.home() / ".cache" / "nmu"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_tensors(obj: dict[str, Any], path: Path) -> Path:
    """Atomically ``torch.save`` a dict of tensors and plain Python values."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: Path) -> dict[str, Any]:
    """Load a file written by :func:`save_tensors` (``weights_only=True``: no code runs)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold an nmu file (expected a dict, got {type(obj).__name__})")
    return obj
