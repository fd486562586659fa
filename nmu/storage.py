"""Where nmu keeps data and checkpoints, and how it writes them safely.

Everything nmu downloads, decodes or trains lives under one root directory:
``$NMU_DATA`` if set, else ``data/`` at the top of the source checkout (or
``~/.cache/nmu`` when nmu is installed elsewhere). A root that cannot be created or written raises
:class:`DataRootError`, which says how to choose another.

Writes are atomic (temporary file + rename), so an interrupted run never leaves a half-written file
behind. Files and directories get the usual permissions under the user's umask (0644 / 0755 with
umask 022). A temporary file is named ``.<name>.<host>-<pid>-<random>.tmp``; the next write of
``<name>`` deletes those left by a killed writer (same host, process gone) and any not modified for
:data:`STALE_TEMP_SECONDS` (another host's, or one whose process id a new process has taken over),
see :func:`writer_gone`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ENV_VAR = "NMU_DATA"

STALE_TEMP_SECONDS = 3600.0
"""A temporary file not written for this long is stale even when its writer cannot be checked."""

MiB = 2 ** 20


def format_mib(n: float) -> str:
    """``n`` bytes in MiB, e.g. ``"3.8 MiB"`` or ``"210 MiB"``."""
    return f"{n / MiB:.1f} MiB" if n < 10 * MiB else f"{n / MiB:.0f} MiB"


class StorageError(OSError):
    """nmu cannot store a file where it needs to; ``errno`` and ``filename`` say what and where."""

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.filename = errno, filename

    def __str__(self) -> str:
        return str(self.args[0])


class DataRootError(StorageError):
    """The data root (``$NMU_DATA``) or a directory under it cannot be created or written."""


class InsufficientSpaceError(StorageError):
    """Too little free disk space for what nmu is about to write."""


CHECKOUT = Path(__file__).resolve().parent.parent
"""The source checkout nmu runs from (if it is one: it has a ``pyproject.toml``)."""


def shown(path: str | Path) -> str:
    """``path`` as printed into a notebook or a log: relative to the checkout when inside it, so that no
    executed notebook carries the generating machine's folders."""
    path, here = Path(path).resolve(), CHECKOUT.resolve()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


def data_root() -> Path:
    """The root directory for datasets, decoded caches and checkpoints: ``$NMU_DATA`` if set and not
    empty (a relative one is taken from the source checkout, as ``make`` and notebook kernels in
    ``notebooks/`` run from different folders; outside a checkout, from the working directory), else
    ``data/`` in the checkout, else ``~/.cache/nmu``. A value that cannot be resolved (a symlink
    loop) raises :class:`DataRootError`."""
    env = os.environ.get(ENV_VAR)
    if env:
        return _env_root(env)
    if (CHECKOUT / "pyproject.toml").is_file():
        return CHECKOUT / "data"
    return Path.home() / ".cache" / "nmu"


def _env_root(env: str) -> Path:
    path = Path(env).expanduser()
    if not path.is_absolute() and (CHECKOUT / "pyproject.toml").is_file():
        path = CHECKOUT / path
    try:
        return path.resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        raise DataRootError(f"nmu's data root ${ENV_VAR}={env} cannot be used: {err}. Point ${ENV_VAR} at a "
                            f"directory, e.g. `export {ENV_VAR}=$HOME/nmu-data`.", getattr(err, "errno", None),
                            env) from err


def _root_origin(root: Path) -> str:
    env = os.environ.get(ENV_VAR)
    if env and _env_root(env) == root:
        return f"set by ${ENV_VAR}={env}"
    if env:
        return "passed explicitly"
    return f"the default, as ${ENV_VAR} is not set"


def ensure_writable(directory: str | Path, root: str | Path | None = None) -> Path:
    """Create ``directory`` (and its parents) if needed and check that nmu can write there.

    ``root`` is the data root ``directory`` belongs to (default :func:`data_root`). When
    ``directory`` lies under it, failure raises :class:`DataRootError` naming the root and saying
    how to choose another; elsewhere the original :class:`OSError` is raised.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if os.access(directory, os.W_OK | os.X_OK):
            return directory
        problem: OSError = PermissionError(errno.EACCES, "directory is not writable", str(directory))
    except OSError as err:
        problem = err
    root = Path(root).expanduser().resolve() if root is not None else data_root()
    if not directory.resolve().is_relative_to(root):
        raise problem
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        why = f"{existing} is a file, not a directory"
    else:
        why = f"{directory} cannot be {'written' if directory.is_dir() else 'created'} ({problem.strerror or problem})"
    err = DataRootError(
        f"nmu's data root {root} ({_root_origin(root)}) cannot be used: {why}. Point ${ENV_VAR} at a "
        f"writable directory with room for datasets and checkpoints, e.g. `export {ENV_VAR}=$HOME/nmu-data`.",
        problem.errno, str(directory))
    raise err from problem


def ensure_free_space(directory: str | Path, needed: int, purpose: str = "") -> None:
    """Raise :class:`InsufficientSpaceError` when the file system of ``directory`` (which must
    exist) has fewer than ``needed`` bytes free; do nothing when free space cannot be measured."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        err = InsufficientSpaceError(
            f"only {format_mib(free)} free at {directory}, but {purpose or 'this'} needs about "
            f"{format_mib(needed)}. Free some space there, or point ${ENV_VAR} at a disk with room.",
            errno.ENOSPC, str(directory))
        raise err


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_pattern(name: str) -> re.Pattern[str]:
    # ours: .<name>.<host>-<pid>-<random>.tmp; older nmu's (tempfile.mkstemp): .<name>.<8 chars>.tmp
    return re.compile(rf"\.{re.escape(name)}\.(?:([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{8}}|[a-z0-9_]{{8}})\.tmp")


class waiting_lock:
    """An inter-process lock file (filelock) that says so when it has to wait for another process
    ``what`` (e.g. "unpacking cifar10-jpeg"), and what to do when another user's lock file cannot be opened."""

    def __init__(self, path: Path, what: str):
        from filelock import FileLock

        self.lock, self.what = FileLock(str(path)), what

    def __enter__(self):
        from filelock import Timeout

        try:
            try:
                self.lock.acquire(timeout=0)
            except Timeout:
                print(f"nmu: waiting for another process {self.what} ({self.lock.lock_file})", file=sys.stderr)
                self.lock.acquire()
        except PermissionError as err:
            raise DataRootError(
                f"cannot open the lock file {self.lock.lock_file} ({err.strerror}): another user made it. In a data "
                f"root shared by several users, give them one group and umask 002 (group-writable files); or point "
                f"${ENV_VAR} at a folder of your own.", err.errno, self.lock.lock_file) from err
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


def env_flag(name: str, default: bool) -> bool:
    """The yes/no environment variable ``name``: 1/true/yes/on or 0/false/no/off (any case); unset or
    empty means ``default``, anything else is a ValueError naming the variable."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:
        raise ValueError(f"${name}={os.environ[name]!r}: use 1/true/yes/on or 0/false/no/off")
    return default


def progress_enabled(progress: bool = True) -> bool:
    """Whether to show progress bars and messages: ``progress``, unless ``$NMU_PROGRESS`` is off
    (:func:`env_flag`; ``terminal`` is on, see :func:`progress_bar`)."""
    return progress and (_progress_setting() == "terminal" or env_flag("NMU_PROGRESS", True))


def _progress_setting() -> str:
    return os.environ.get("NMU_PROGRESS", "").strip().lower()


def progress_bar(*, progress: bool = True, **kwargs: Any):
    """A tqdm progress bar (``kwargs`` as tqdm's), disabled unless :func:`progress_enabled`. With
    ``$NMU_PROGRESS=terminal`` (what ``make`` sets for papermill) it is plain text on the process's own
    stderr, the terminal that runs ``make`` (ipykernel forwards it to the notebook too, where
    :mod:`nmu.scrub` keeps what a terminal would show at the end); else ``tqdm.auto`` (a widget in
    Jupyter, text in a shell)."""
    if _progress_setting() == "terminal":
        from tqdm import tqdm

        return tqdm(file=sys.__stderr__, disable=not progress, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(disable=not progress_enabled(progress), **kwargs)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running on this host (True where it cannot be checked)."""
    if pid <= 0:
        return True  # not a process we can check: leave it to the age limit
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def writer_tag() -> str:
    """``<host>-<pid>`` of this process, for names of files and folders it is writing."""
    return f"{_HOST}-{os.getpid()}"


def writer_gone(host: str | None, pid: int, path: Path, max_age: float) -> bool:
    """Whether the writer of ``path``, process ``pid`` on the host tagged ``host`` (:func:`writer_tag`;
    None: unknown), has stopped: on this host, when the process no longer exists; in any case when
    ``path`` has not been modified for ``max_age`` seconds, its time stamp being that far in the
    past or (a skewed clock) in the future. The age also covers a process id taken over by a new process."""
    if host == _HOST and not process_alive(pid):
        return True
    try:
        return abs(time.time() - path.stat().st_mtime) > max_age
    except OSError:
        return False


def remove_stale_temps(path: str | Path, max_age: float | None = None) -> list[Path]:
    """Delete the temporary files of interrupted :func:`atomic_write` calls for ``path`` whose
    writer is gone (:func:`writer_gone`, with ``max_age`` default :data:`STALE_TEMP_SECONDS`).
    Returns the files removed."""
    path = Path(path)
    max_age = STALE_TEMP_SECONDS if max_age is None else max_age
    pattern = _temp_pattern(path.name)
    removed = []
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return removed
    for tmp in candidates:
        host, pid = pattern.fullmatch(tmp.name).groups()
        if writer_gone(host, int(pid or 0), tmp, max_age):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # another process removed it, or we may not: not our business
    return removed


def remove_tree(path: str | Path) -> None:
    """Delete the folder (or file) ``path`` if it exists, whatever its depth (``shutil.rmtree``
    recurses once per level and fails beyond about 1,000), never following symbolic links."""
    rm = shutil.which("rm")
    if rm:
        subprocess.run([rm, "-rf", "--", str(path)], check=False, stdin=subprocess.DEVNULL)
    elif Path(path).is_dir() and not Path(path).is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The file gets the permissions of an ordinary new file (0666 less the umask). Stale temporary
    files of earlier interrupted writes of ``path`` are removed first (:func:`remove_stale_temps`).
    """
    path = Path(path)
    ensure_writable(path.parent)
    remove_stale_temps(path)
    while True:
        tmp = path.parent / f".{path.name}.{writer_tag()}-{secrets.token_hex(4)}.tmp"
        try:
            # os.open applies the umask, unlike tempfile.mkstemp (always 0600)
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _torch_save(obj: Any, path: Path) -> None:
    # Given a path, torch's own writer reports a full disk as an opaque RuntimeError ("unexpected
    # pos ..."). Through a Python file object the OSError(ENOSPC) is raised, but torch's clean-up
    # then raises that RuntimeError on top of it: dig the OSError out.
    try:
        with open(path, "wb") as fh:
            torch.save(obj, fh)
    except RuntimeError as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from err


def save_tensors(obj: dict[str, Any], path: str | Path) -> Path:
    """Atomically ``torch.save`` a dict of tensors and plain Python values.

    A write error (full disk included) raises :class:`OSError`."""
    return atomic_write(path, lambda tmp: _torch_save(obj, tmp))


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Load a file written by :func:`save_tensors` (``weights_only=True``: no code runs)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold an nmu file (expected a dict, got {type(obj).__name__})")
    return obj
