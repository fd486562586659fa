"""Checkpoint cache: a model is trained once per key and loaded on every later request.

The key is a hash of everything that determines the weights (dataset fingerprint, arch, recipe,
split checksum, seeds, precision). Files are written atomically under a per-key lock, so two
processes (``make -j``, two notebooks) never train the same model at once; the second one waits
and loads. A truncated file is set aside and rebuilt; a file holding another key raises.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from nmu.storage import data_root, load_tensors, save_tensors

FORMAT = "nmu-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint file exists but belongs to something else."""


def checkpoint_key(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def checkpoint_path(name: str, fields: dict[str, Any], root: Path | None = None) -> Path:
    return (root or data_root()) / "checkpoints" / f"{name}-{checkpoint_key(fields)}.pt"


def cached(name: str, fields: dict[str, Any], build: Callable[[], dict[str, Any]],
           root: Path | None = None) -> tuple[dict[str, Any], bool]:
    """Return ``(record, was_cached)``; ``build()`` makes the record (tensors, numbers, strings)
    when no valid checkpoint for ``fields`` exists yet."""
    path = checkpoint_path(name, fields, root)
    key = checkpoint_key(fields)
    record = _load(path, key)
    if record is not None:
        return record, True
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        record = _load(path, key)  # another process may have finished it while we waited
        if record is not None:
            return record, True
        record = build()
        save_tensors({"format": FORMAT, "key": key, "fields": json.loads(json.dumps(fields, default=str)),
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}, path)
        return record, False


def _load(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = load_tensors(path)
    except Exception as err:
        aside = path.with_suffix(f".corrupt-{int(time.time())}")
        path.rename(aside)
        warnings.warn(f"checkpoint {path} could not be read ({err}); moved it to {aside} and will rebuild it",
                      stacklevel=3)
        return None
    if record.get("format") != FORMAT or record.get("key") != key:
        raise CheckpointError(
            f"{path} is not the checkpoint it is named after (format {record.get('format')!r}, key "
            f"{record.get('key')!r}, expected {key!r}). It was copied or renamed by hand: delete it to retrain.")
    return record
