"""Checkpoint cache: a model is trained once per key and loaded on every later request.

The key is a hash of everything that determines the weights (dataset fingerprint, arch, recipe,
split checksum, seeds, precision, and, through :func:`code_digest`, the code that computes them).
Files are written atomically under a per-key lock, so two processes (``make -j``, two notebooks)
never train the same model at once; the second one waits and loads. A truncated file is set aside
(under the lock) and rebuilt; a file holding another key raises :class:`CheckpointError`.

Before building, :func:`cached` checks the data root is writable (:class:`~nmu.storage.DataRootError`)
and has room for the checkpoint (:class:`~nmu.storage.InsufficientSpaceError`, see
:func:`space_needed`); if saving still fails, the result is returned uncached with a
:class:`CheckpointNotSavedWarning` rather than lost.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from nmu.storage import (MiB, data_root, ensure_free_space, ensure_writable, format_mib, load_tensors,
                         remove_tree, save_tensors, waiting_lock)

FORMAT = "nmu-checkpoint-v1"

MIN_FREE_BYTES = 64 * MiB
"""Free space :func:`cached` wants before building when no checkpoint of the same name exists yet;
``$NMU_MIN_FREE_MB`` overrides it (0 switches the check off unless such a checkpoint exists)."""


_BUILDS = [0]
"""How many records :func:`cached` has built in this process."""


def builds() -> int:
    """How many records :func:`cached` has built (not loaded) in this process so far."""
    return _BUILDS[0]


class CheckpointError(RuntimeError):
    """A checkpoint file exists but belongs to something else."""


class CheckpointNotSavedWarning(UserWarning):
    """A result was computed but could not be written to the cache (full disk, ...)."""


def checkpoint_key(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def checkpoint_path(name: str, fields: dict[str, Any], root: Path | None = None) -> Path:
    return (root or data_root()) / "checkpoints" / f"{name}-{checkpoint_key(fields)}.pt"


def is_cached(name: str, fields: dict[str, Any], root: Path | None = None) -> bool:
    """Whether :func:`cached` would find a checkpoint for ``fields`` (without reading it: files are
    written atomically, so one that exists is whole; an unreadable one is rebuilt on use)."""
    return checkpoint_path(name, fields, root).is_file()


@functools.lru_cache(maxsize=None)
def code_digest(*modules: str) -> str:
    """A short sha256 (16 hex digits) of the code of ``modules`` (importable names, e.g.
    ``"nmu.train"``; a package counts as its ``__init__.py``), in any order.

    Put it in a cache key to invalidate exactly the artefacts computed by that code when it is
    edited. The code is the module's syntax tree without docstrings (attribute docstrings too), so
    editing a comment or a docstring keeps the cache. Computed once per process and argument list
    (``code_digest.cache_clear()`` forgets).
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"no module named {name!r}", name=name)
        if not spec.origin or not os.path.isfile(spec.origin):
            raise ValueError(f"module {name!r} has no source file (origin {spec.origin!r})")
        h.update(name.encode() + b"\0" + _code(Path(spec.origin).read_text()).encode() + b"\0")
    return h.hexdigest()[:16]


def _code(source: str) -> str:
    """``source`` re-printed from its syntax tree, without comments and statements that are only a
    string (docstrings of modules, classes and functions, and the attribute docstrings after
    assignments)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if not isinstance(body, list):
                continue
            kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]
            if len(kept) < len(body):
                setattr(node, name, kept or [ast.Pass()])
    return ast.unparse(tree)


def space_needed(name: str, directory: Path) -> int:
    """Bytes :func:`cached` wants free before building a ``name`` checkpoint in ``directory``:
    the size of the largest existing checkpoint of that name (another model of the same kind),
    at least :data:`MIN_FREE_BYTES` (or ``$NMU_MIN_FREE_MB``)."""
    env = os.environ.get("NMU_MIN_FREE_MB", "").strip()
    try:
        needed = int(float(env) * MiB) if env else MIN_FREE_BYTES
    except (ValueError, OverflowError):
        needed = -1
    if needed < 0:
        raise ValueError(f"$NMU_MIN_FREE_MB={env!r}: give the free space to want in MiB, e.g. 64 (0: none)")
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{20}}\.pt")
    try:
        for p in directory.iterdir():
            if pattern.fullmatch(p.name):
                needed = max(needed, p.stat().st_size)
    except OSError:
        pass
    return needed


def cached(name: str, fields: dict[str, Any], build: Callable[[], dict[str, Any]],
           root: Path | None = None) -> tuple[dict[str, Any], bool]:
    """Return ``(record, was_cached)``; ``build()`` makes the record (tensors, numbers, strings)
    when no valid checkpoint for ``fields`` exists yet.

    Raises :class:`~nmu.storage.DataRootError` (data root unusable) or
    :class:`~nmu.storage.InsufficientSpaceError` before calling ``build()``; warns with
    :class:`CheckpointNotSavedWarning` and returns the record if it cannot be saved afterwards.
    """
    path = checkpoint_path(name, fields, root)
    key = checkpoint_key(fields)
    _warn_if_anyone_can_write(path.parent)
    record = _load(path, key, set_aside=False)
    if record is not None:
        return record, True
    ensure_writable(path.parent, root or data_root())
    with waiting_lock(Path(f"{path}.lock"), f"building {path.name}"):
        record = _load(path, key, set_aside=True)  # another process may have finished it while we waited
        if record is not None:
            return record, True
        floor = f" (at least $NMU_MIN_FREE_MB={os.environ['NMU_MIN_FREE_MB']})" if os.environ.get("NMU_MIN_FREE_MB") else ""
        ensure_free_space(path.parent, space_needed(name, path.parent), f"building checkpoint {path.name}{floor}")
        record = build()
        _BUILDS[0] += 1
        try:
            save_tensors({"format": FORMAT, "key": key, "fields": json.loads(json.dumps(fields, default=str)),
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}, path)
        except OSError as err:
            warnings.warn(_not_saved(path, err, record), CheckpointNotSavedWarning, stacklevel=2)
        return record, False


def _not_saved(path: Path, err: OSError, record: dict[str, Any]) -> str:
    said = (f"could not save checkpoint {path} ({err}); returning the result without caching it, so it "
            "will be computed again next time.")
    if path.exists() and not path.is_file():
        return f"{said} Something that is not a file is in its place: remove it."
    size = sum(v.numel() * v.element_size() for v in record.values() if isinstance(v, torch.Tensor))
    try:
        free = f"{format_mib(shutil.disk_usage(path.parent).free)} free there"
    except OSError:
        free = "free space unknown"
    return (f"{said} The file needs about {format_mib(max(size, MiB // 10))} ({free}): free some space or "
            "point $NMU_DATA at another disk.")


_WARNED: set[Path] = set()


def _warn_if_anyone_can_write(folder: Path) -> None:
    """Warn once per process if ``folder`` (a checkpoint folder) is writable by every user."""
    try:
        open_to_all = folder not in _WARNED and os.stat(folder).st_mode & 0o002
    except OSError:
        return
    if open_to_all:
        _WARNED.add(folder)
        warnings.warn(f"{folder} is writable by every user of this machine: anyone can put a checkpoint there that "
                      "nmu loads as the model it is named after (weights only: no code runs). Let only you and your "
                      f"group write there: chmod o-w '{folder}'", stacklevel=3)


def load_weights(model: torch.nn.Module, record: dict[str, Any], path: Path) -> None:
    """Load ``record["state_dict"]`` (from the checkpoint ``path``) into ``model``; weights that do not
    fit it raise :class:`CheckpointError` naming the file to delete."""
    try:
        model.load_state_dict(record["state_dict"])
    except (RuntimeError, KeyError) as err:
        why = str(err).strip().splitlines()[-1].strip() if str(err).strip() else repr(err)
        raise CheckpointError(f"{path} holds weights that do not fit the model ({why}): it was edited or written "
                              "by other code. Delete it to rebuild it.") from err


def _load(path: Path, key: str, set_aside: bool) -> dict[str, Any] | None:
    """The record at ``path``, or None if it is missing or unreadable. ``set_aside`` (only under
    the key's lock) moves an unreadable file out of the way."""
    if not path.is_file():
        return None
    try:
        record = load_tensors(path)
    except FileNotFoundError:
        return None
    except Exception as err:
        if not set_aside:
            return None  # decided under the lock, so that only one process moves it
        stamp, n = int(time.time()), 0
        while (aside := path.with_suffix(f".corrupt-{stamp}" + (f"-{n}" if n else ""))).exists():
            n += 1  # keep every corrupt copy (under the lock: no other process is choosing a name)
        try:
            path.rename(aside)
        except FileNotFoundError:
            return None  # moved by someone else meanwhile
        warnings.warn(f"checkpoint {path} could not be read ({err}); moved it to {aside} and will rebuild it",
                      stacklevel=3)
        return None
    if record.get("format") != FORMAT or record.get("key") != key:
        raise CheckpointError(
            f"{path} is not the checkpoint it is named after (format {record.get('format')!r}, key "
            f"{record.get('key')!r}, expected {key!r}). It was copied or renamed by hand: delete it to retrain.")
    return record


OWN_FILES = {
    "cache": re.compile(r"[^/]+\.pt"),  # decoded data sets (nmu.data)
    "checkpoints": re.compile(r"[\w.-]+-[0-9a-f]{20}(?:\.pt|\.pt\.lock|\.corrupt-\d+(?:-\d+)?)"),
}
"""The files nmu writes in each folder of the data root that ``make clean-cache`` deletes."""
TEMP_FILE = re.compile(r"\..+\.(?:[0-9a-f]{8}-\d+-[0-9a-f]{8}|[a-z0-9_]{8})\.tmp")


def clean(root: Path | None = None) -> list[Path]:
    """Delete the folders of :data:`OWN_FILES` under the data root ``root`` (default
    :func:`~nmu.storage.data_root`): decoded data sets and every checkpoint. Only if each holds
    nothing but files nmu writes there; else a ValueError names the others and nothing is deleted.
    Returns the folders deleted."""
    root = Path(root) if root is not None else data_root()
    folders = [root / name for name in OWN_FILES if (root / name).is_dir()]
    for folder in folders:
        others = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                        or not (OWN_FILES[folder.name].fullmatch(p.name) or TEMP_FILE.fullmatch(p.name)))
        if others:
            raise ValueError(f"{folder} holds what nmu does not write there ({', '.join(others[:5])}"
                             f"{' ...' if len(others) > 5 else ''}), so it may not be nmu's: nothing was deleted. "
                             f"Is {root} the data root you meant ($NMU_DATA)? Move the others away, or delete by hand.")
    for folder in folders:
        remove_tree(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    """``python -m nmu.cache clean`` (``make clean-cache``): :func:`clean` the data root ``$NMU_DATA``."""
    parser = argparse.ArgumentParser(prog="python -m nmu.cache", description="nmu's checkpoint cache")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("clean", help="delete the decoded data sets and the checkpoints of the data root")
    parser.parse_args(argv)
    try:
        removed = clean()
    except ValueError as err:
        print(f"nmu: {err}", file=sys.stderr)
        return 1
    print("nmu: deleted " + ", ".join(map(str, removed)) if removed else f"nmu: nothing to delete in {data_root()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
