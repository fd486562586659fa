"""Getting data set files onto disk safely, for :mod:`nmu.data` and ``make data``.

* :func:`unpack` extracts an archive into a temporary folder beside its target, under a file
  lock, checks it (:func:`check_tree`: a known data set must match :data:`OFFICIAL_COUNTS` or
  :data:`PICKLE_FILES`) and renames it into place, so an interrupted or concurrent unpack never
  leaves a partial tree; an incomplete folder raises :class:`IncompleteDataError` naming what to
  delete. What it unpacks is plain files and folders only, with no owners and under the umask's
  permissions: an archive holding anything else (a link, a device, a FIFO, folders nested deeper
  than :data:`MAX_DEPTH`) raises :class:`UnsafeArchiveError` naming the member, and nothing of it is kept.
* :func:`locate` finds a data set's folder or archive under the data root, else downloads it
  (:data:`DOWNLOAD_TIMEOUT` seconds without data per try, :data:`DOWNLOAD_RETRIES` tries). When
  downloads are not allowed (``load_dataset(download=False)`` or ``$NMU_OFFLINE=1``, see
  :func:`offline`) it never touches the network, and its error says which files to put where.
* ``python -m nmu.archives unpack DIR [--root ROOT]`` (``make data``) unpacks every known archive
  (:data:`ARCHIVES`) in ``DIR`` into the data root.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

from nmu.storage import (MiB, DataRootError, InsufficientSpaceError, data_root, ensure_free_space, ensure_writable,
                         env_flag, progress_enabled, remove_tree, waiting_lock)

# CIFAR-10's classes in label order (alphabetical): the class folders of its JPEG tree.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

# What a complete copy of each known image tree holds: classes, and images per class in each split
# (TinyImageNet's val/ is one folder of 10,000 images). A tree that differs is refused.
OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "cifar10-jpeg": {"classes": 10, "train": 5000, "test": 1000},
    "cifar100-jpeg": {"classes": 100, "train": 500, "test": 100},
    "tiny-imagenet-200": {"classes": 200, "train": 500, "val": 10000},
}
# Files a complete copy of each known pickled data set holds.
PICKLE_FILES: dict[str, tuple[str, ...]] = {
    "cifar-10-batches-py": tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
    "cifar-100-python": ("train", "test", "meta"),
}
# Archive file name -> the folder it unpacks into (``python -m nmu.archives unpack`` knows these).
ARCHIVES: dict[str, str] = {
    "cifar10-jpeg.tar.xz": "cifar10-jpeg",
    "cifar100-jpeg.tar.xz": "cifar100-jpeg",
    "tiny-imagenet-200.tar.xz": "tiny-imagenet-200",
    "cifar-10-python.tar.gz": "cifar-10-batches-py",
    "cifar-100-python.tar.gz": "cifar-100-python",
    "tiny-imagenet-200.zip": "tiny-imagenet-200",
}
# The md5 of the archives their authors publish: a local copy is checked before it is unpacked.
PUBLISHED_MD5: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "tiny-imagenet-200.zip": "90528d7ca1a48142e341f4ef8d21d0de",
}
# Disk space each known folder takes unpacked (MiB, on 4 KiB blocks), checked before unpacking.
UNPACKED_MIB: dict[str, int] = {"cifar10-jpeg": 240, "cifar100-jpeg": 240, "tiny-imagenet-200": 450,
                                "cifar-10-batches-py": 180, "cifar-100-python": 170}
MAX_DEPTH = 16
"""Folder levels an unpacked archive may have (TinyImageNet has 4)."""

DOWNLOAD_TIMEOUT = 60.0  # seconds a connection may stay silent before a try is given up
DOWNLOAD_RETRIES = 3     # tries in all
DOWNLOAD_BACKOFF = 5.0   # seconds before the second try, doubling after
OFFLINE_ENV = "NMU_OFFLINE"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable; the message says where to put it."""


class IncompleteDataError(DataNotFoundError):
    """Raised when a known data set's folder is incomplete (e.g. an interrupted unpack); the message
    names the folder and says what to delete or re-extract."""


class UnsafeArchiveError(ValueError):
    """An archive holds something no data set archive needs (a link, a device, a FIFO, a deep nest of
    folders); the message names it. Nothing of the archive is kept."""


def offline() -> bool:
    """True when ``$NMU_OFFLINE`` is on (1/true/yes/on, :func:`nmu.storage.env_flag`): nmu then never downloads."""
    return env_flag(OFFLINE_ENV, False)


# ------------------------------------------------------------------------------ safe unpack, checks

def unpack(archive: str | Path, root: str | Path | None = None, folder: str | None = None,
           md5: str | None = None) -> Path:
    """Unpack ``archive`` into ``root/folder`` (default: the folder :data:`ARCHIVES` names) safely.

    Under a file lock, the archive is checked against ``md5`` (default: its :data:`PUBLISHED_MD5`,
    if any), extracted into a temporary folder beside the target, checked (plain files and folders
    only; a known data set must have its official image counts) and renamed into place, so the
    target either does not exist or is complete. If the target already exists it is only checked:
    an incomplete one raises :class:`IncompleteDataError`. Returns the target folder.
    """
    archive = Path(archive)
    root = Path(root) if root is not None else data_root()
    folder = folder or ARCHIVES.get(archive.name)
    if folder is None:
        raise ValueError(f"unknown archive {archive.name}; known: {sorted(ARCHIVES)} (or pass folder=)")
    if not archive.is_file():
        raise DataNotFoundError(f"no archive {archive}")
    ensure_writable(root, root)
    target = root / folder
    with waiting_lock(root / f".{folder}.lock", f"unpacking {folder}"):
        if target.exists():
            check_tree(target, fix=fix_hint(target, archive))
            return target
        for stale in root.glob(f".{folder}.unpack-*"):  # left by a killed unpack; we hold the lock
            remove_tree(stale)
        _check_md5(archive, md5 or PUBLISHED_MD5.get(archive.name))
        needed = UNPACKED_MIB.get(folder, 0) * MiB
        ensure_free_space(root, needed, f"unpacking {archive.name}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.unpack-", dir=root))
        try:
            _extract_all(archive, tmp, needed)
            if not (tmp / folder).is_dir():
                raise ValueError(f"{archive} holds no top-level folder {folder}/: it is not the expected archive")
            check_tree(tmp / folder, fix=f"The archive {archive} itself is incomplete or damaged: replace it "
                                         "(compare its sha256 with the published one).", shown=target)
            os.rename(tmp / folder, target)
        finally:
            remove_tree(tmp)
    return target


def _check_md5(archive: Path, md5: str | None) -> None:
    if md5 is None:
        return
    digest = hashlib.md5(usedforsecurity=False)
    with open(archive, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != md5:
        raise IncompleteDataError(f"{archive} is not the published archive (md5 {digest.hexdigest()}, published {md5}): "
                                  "it is damaged or was altered; delete it and download it again")


def check_tree(path: str | Path, *, fix: str | None = None, shown: Path | None = None) -> list[tuple[str, int, int]]:
    """Check a known data set's folder (named as in :data:`OFFICIAL_COUNTS` or :data:`PICKLE_FILES`)
    and return its listing ``(relative path, size, mtime_ns)``; raise :class:`IncompleteDataError`
    naming the folder when it is not complete. Other folders are only listed."""
    path = Path(path)
    listing = scan_tree(path)
    problems = _problems(path, listing)
    if problems:
        more = f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else ""
        why = " (left by an interrupted or concurrent unpack?)" if shown is None else ""
        shown = shown or path
        raise IncompleteDataError(
            f"{shown} is incomplete or not the official data set{why}:\n  "
            + "\n  ".join(problems[:8]) + more + "\n" + (fix or fix_hint(shown, None)))
    return listing


def fix_hint(target: Path, archive: Path | None) -> str:
    """What to do about an incomplete ``target`` folder."""
    names = [a for a, f in ARCHIVES.items() if f == target.name]
    if archive is not None and archive.parent.resolve() == target.parent.resolve():
        again = f"the next load unpacks it again from {archive}"
    elif archive is not None:
        again = f"then `python -m nmu.archives unpack {archive.parent}` (`make data`) unpacks it again from {archive}"
    elif names:
        again = (f"then unpack it again: `make data`, or `python -m nmu.archives unpack DIR` with DIR holding "
                 f"{' or '.join(names)}; the next load does so itself if {target.parent / names[0]} is there"
                 + (" (or downloads it when online)" if target.name in PICKLE_FILES else ""))
    else:
        again = "then put a complete copy there"
    return f"Delete the folder (rm -rf '{target}'); {again}."


def _problems(path: Path, listing: list[tuple[str, int, int]]) -> list[str]:
    name = path.name
    if name in PICKLE_FILES:
        have = {rel for rel, _, _ in listing}
        return [f"{f} is missing" for f in PICKLE_FILES[name] if f not in have]
    if name not in OFFICIAL_COUNTS:
        return []
    expect = OFFICIAL_COUNTS[name]
    counts = Counter(rel.rpartition("/")[0] for rel, _, _ in listing if rel.lower().endswith(IMAGE_SUFFIXES))
    problems: list[str] = []

    def per_class(split_dir: str, classes: list[str], n: int) -> None:
        short = [(c, counts.get(f"{split_dir}/{c}", 0)) for c in classes]
        total = sum(k for _, k in short)
        if total != n * expect["classes"] or any(k != n for _, k in short):
            problems.append(f"{split_dir}/ has {total:,} images, expected {n * expect['classes']:,} ({n:,} per class)")
            problems.extend(f"{split_dir}/{c}/ has {k:,} images, expected {n:,}" for c, k in short if k != n)

    if name == "tiny-imagenet-200":
        wnids_file = path / "wnids.txt"
        wnids = wnids_file.read_text().split() if wnids_file.is_file() else []
        if not wnids:
            return ["wnids.txt is missing or empty"]
        if len(wnids) != expect["classes"]:
            problems.append(f"wnids.txt lists {len(wnids)} classes, expected {expect['classes']}")
        dirs = sorted(p.name for p in (path / "train").iterdir() if p.is_dir()) if (path / "train").is_dir() else []
        if sorted(wnids) != dirs:
            problems.append(f"train/ has {len(dirs)} class folders, not the {len(wnids)} wnids of wnids.txt")
        short = [(w, counts.get(f"train/{w}/images", 0)) for w in sorted(wnids)]
        total = sum(k for _, k in short)
        if any(k != expect["train"] for _, k in short):
            problems.append(f"train/ has {total:,} images, expected {expect['train'] * expect['classes']:,} "
                            f"({expect['train']:,} per class in train/<wnid>/images/)")
            problems.extend(f"train/{w}/images/ has {k:,} images, expected {expect['train']:,}"
                            for w, k in short if k != expect["train"])
        if counts.get("val/images", 0) != expect["val"]:
            problems.append(f"val/images/ has {counts.get('val/images', 0):,} images, expected {expect['val']:,}")
        if not (path / "val" / "val_annotations.txt").is_file():
            problems.append("val/val_annotations.txt is missing")
        return problems
    for split in ("train", "test"):
        if not (path / split).is_dir():
            problems.append(f"{split}/ is missing")
            continue
        classes = sorted(p.name for p in (path / split).iterdir() if p.is_dir())
        if len(classes) != expect["classes"] or (name == "cifar10-jpeg" and tuple(classes) != CIFAR10_CLASSES):
            problems.append(f"{split}/ has {len(classes)} class folders, expected {expect['classes']}")
        per_class(split, classes, expect[split])
    if name == "cifar100-jpeg" and not (path / "classes.csv").is_file():
        problems.append("classes.csv is missing")
    return problems


def scan_tree(path: Path) -> list[tuple[str, int, int]]:
    """Every regular file under ``path`` as (posix relative path, size, mtime_ns), sorted. Symbolic
    links are followed as the loaders follow them (a symlinked class folder is listed), except into
    a folder that holds the link (a cycle); other kinds of files (FIFOs, devices) are left out."""
    out: list[tuple[str, int, int]] = []
    top = os.stat(path)
    stack = [(str(path), "", ((top.st_dev, top.st_ino),))]
    while stack:  # not os.walk: it recurses once per level (Python < 3.12)
        folder, rel, above = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    st = entry.stat()
                except OSError:
                    continue  # a dangling symbolic link
                if stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) not in above:
                    stack.append((entry.path, f"{rel}{entry.name}/", (*above, (st.st_dev, st.st_ino))))
                elif stat.S_ISREG(st.st_mode):
                    out.append((f"{rel}{entry.name}", st.st_size, st.st_mtime_ns))
    out.sort()
    return out


def describe(mode: int) -> str:
    """What kind of file an ``st_mode`` is, in words ("a FIFO", "a block device", ...)."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISBLK, "a block device"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _extract_all(archive: Path, dest: Path, needed: int = 0) -> None:
    """Extract ``archive`` (.tar.* or .zip) into ``dest`` and keep it only if it is plain files and
    folders (:func:`_plain_files`). Uses the system ``tar`` when there is one (several times faster
    than Python's tarfile on 100,000 small files), without the archive's owners and permissions,
    else tarfile's ``data`` filter. Raises :class:`IncompleteDataError` if the archive cannot be
    read to its end, :class:`InsufficientSpaceError` if the disk fills up (``needed``: bytes the
    data set takes) and :class:`UnsafeArchiveError` for a member that is not a file or a folder."""
    if progress_enabled():
        print(f"nmu: unpacking {archive} ...", file=sys.stderr)
    tar_exe = shutil.which("tar") if archive.suffix != ".zip" else None
    run = None
    try:
        if tar_exe:  # GNU tar and bsdtar detect the compression, refuse '..' and strip leading '/'
            run = subprocess.run([tar_exe, "-xf", str(archive), "-C", str(dest), "--no-same-owner",
                                  "--no-same-permissions"], capture_output=True, text=True)
            if "No space left on device" in run.stderr:
                raise OSError(errno.ENOSPC, "No space left on device", str(dest))
            if run.returncode != 0:  # e.g. no xz program for tar: try Python's own reader
                for entry in dest.iterdir():
                    remove_tree(entry)
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:  # extractall drops absolute and '..' parts of names
                zf.extractall(dest)
        elif run is None or run.returncode != 0:
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise InsufficientSpaceError(
                f"the disk of {dest.parent} filled up while unpacking {archive}"
                + (f" (the data set takes about {needed // MiB} MiB)" if needed else "")
                + f": free some space there, or point $NMU_DATA at a disk with room", errno.ENOSPC, str(dest)) from err
        if isinstance(err, tarfile.FilterError):
            raise UnsafeArchiveError(f"{archive} is refused, nothing of it was kept: {err}") from err
        tar_said = f"; tar said: {run.stderr.strip()[-300:]}" if run is not None else ""
        raise IncompleteDataError(f"could not unpack {archive} ({type(err).__name__}: {err}{tar_said}). The archive "
                                  "is truncated or damaged: replace it (compare its sha256 with the published one)"
                                  ) from err
    _plain_files(dest, archive)


def _plain_files(dest: Path, archive: Path) -> None:
    """Raise :class:`UnsafeArchiveError` naming the first member under ``dest`` that is not a regular
    file or a folder, or lies more than :data:`MAX_DEPTH` folders deep; give every file and folder
    the permissions of a new one under the umask (0644 and 0755 with umask 022, no setuid bits)."""
    probe = dest / ".umask-probe"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    file_mode = probe.stat().st_mode & 0o777
    probe.unlink()
    dir_mode = file_mode | (file_mode & 0o444) >> 2  # x wherever r: 0755 from 0644
    stack = [(dest, 0)]
    while stack:
        folder, depth = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                member = os.path.relpath(entry.path, dest)
                if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                    os.chmod(entry.path, dir_mode)
                    stack.append((Path(entry.path), depth + 1))
                elif stat.S_ISREG(st.st_mode):
                    if stat.S_IMODE(st.st_mode) != file_mode:
                        os.chmod(entry.path, file_mode)
                else:
                    what = "a folder nested too deep" if stat.S_ISDIR(st.st_mode) else describe(st.st_mode)
                    raise UnsafeArchiveError(
                        f"{archive} is refused, nothing of it was kept: its member {member} is {what}, and a data set "
                        f"archive holds only files and folders (at most {MAX_DEPTH} levels deep). Replace it with the "
                        "published archive (compare its sha256)")


# ------------------------------------------------------------------------------------------ downloads

def _fetch(url: str, dest: Path, md5: str | None) -> None:
    """Download ``url`` to ``dest`` (atomically) with a timeout per socket operation and a bounded
    number of tries; raises ``OSError`` with what happened on each try."""
    errors = []
    for attempt in range(1, max(1, DOWNLOAD_RETRIES) + 1):
        fd, part_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        part = Path(part_name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
            if md5 and digest.hexdigest() != md5:
                raise OSError(f"md5 {digest.hexdigest()} of the downloaded file is not the expected {md5}")
            os.replace(part, dest)
            return
        except (OSError, http.client.HTTPException, socket.timeout) as err:
            errors.append(f"try {attempt}: {type(err).__name__}: {err}")
            if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500:
                break  # not found / forbidden: another try will not help
            if attempt < DOWNLOAD_RETRIES:
                time.sleep(DOWNLOAD_BACKOFF * 2 ** (attempt - 1))
        finally:
            part.unlink(missing_ok=True)
    raise OSError(f"downloading {url} failed after {len(errors)} tries (timeout {DOWNLOAD_TIMEOUT:g} s "
                  "without data per try): " + "; ".join(errors))


def _missing(root: Path, what: str, where: str, allowed: bool, error: Exception | None = None) -> DataNotFoundError:
    message = f"{what} is not under the data root {root} (set $NMU_DATA to change it). Put there one of\n{where}"
    if error is not None:
        message += f"\nThe download failed: {error}"
    elif not allowed:
        message += (f"\nNothing was downloaded: ${OFFLINE_ENV}={os.environ.get(OFFLINE_ENV)} (offline mode)."
                    if offline() else "\nNothing was downloaded (download=False).")
    return DataNotFoundError(message)


def locate(root: Path, options: list[tuple[str, tuple[str, ...]]], online: tuple[str, str, str, str] | None,
           allowed: bool, what: str, where: str) -> Path:
    """The first existing folder of ``options`` (folder, its archive names) under ``root``, else the
    first archive found there, unpacked; else ``online`` = (url, md5, archive name, folder)
    downloaded and unpacked when ``allowed``."""
    for folder, _ in options:
        if (root / folder).is_dir():
            return root / folder
    published = {online[2]: online[1]} if online is not None else {}
    for folder, archives in options:
        for name in archives:
            if (root / name).is_file():
                return unpack(root / name, root, folder, published.get(name))
    if online is None or not allowed:
        raise _missing(root, what, where, allowed)
    url, md5, name, folder = online
    try:
        root.mkdir(parents=True, exist_ok=True)
        with waiting_lock(root / f".{name}.lock", f"downloading {name}"):
            if not (root / name).is_file():
                _fetch(url, root / name, md5)
    except OSError as err:
        raise _missing(root, what, where, allowed, err) from err
    return unpack(root / name, root, folder, md5)


# ---------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """``python -m nmu.archives unpack DIR [--root ROOT] [--missing-ok] [--only ARCHIVE ...]``: unpack
    every known archive in DIR (see :data:`ARCHIVES`; with ``--only``, those named) into the data root,
    safely and idempotently; exit status 1 if any is incomplete or refused, or if DIR does not exist
    (unless ``--missing-ok``)."""
    parser = argparse.ArgumentParser(prog="python -m nmu.archives", description="nmu's data set archives")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("unpack", help="unpack every known archive found in DIR into the data root")
    cmd.add_argument("dir", type=Path, help="folder holding e.g. cifar10-jpeg.tar.xz (make data: $(SHARED_DATA))")
    cmd.add_argument("--root", type=_folder_argument, default=None,
                     help="data root (default: $NMU_DATA, see nmu.storage)")
    cmd.add_argument("--missing-ok", action="store_true", help="a DIR that does not exist means nothing to unpack")
    cmd.add_argument("--only", nargs="*", metavar="ARCHIVE", default=None,
                     help="unpack only these archive names (make data: the profile's, nmu.profiles.Profile.archives)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"nmu: no folder {args.dir}" + ("; nothing to unpack" if args.missing_ok else
              " (make data: set SHARED_DATA to the folder holding the archives)"), file=sys.stderr)
        return 0 if args.missing_ok else 1
    wanted = set(ARCHIVES) if args.only is None else set(args.only) & set(ARCHIVES)
    found = sorted(p for p in args.dir.glob("*") if p.name in wanted)
    if not found:
        print(f"nmu: no archive of {', '.join(sorted(wanted)) or 'any data set asked for'} in {args.dir}; "
              "nothing to unpack")
        return 0
    try:
        root = args.root.expanduser().resolve() if args.root else data_root()
        ensure_writable(root, root)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop (Python < 3.13)
        print(f"nmu: {err}" if isinstance(err, DataRootError) else f"nmu: --root {args.root}: {err}", file=sys.stderr)
        return 1
    failed = 0
    for archive in found:
        target = root / ARCHIVES[archive.name]
        existed = target.exists()
        start = time.perf_counter()
        try:
            unpack(archive, root)
        except (DataNotFoundError, ValueError, OSError, tarfile.TarError, zipfile.BadZipFile) as err:
            failed += 1
            print(f"nmu: {archive.name}: {err}", file=sys.stderr)
            continue
        print(f"nmu: {target} is complete, nothing to do" if existed else
              f"nmu: unpacked {archive.name} into {target} ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def _folder_argument(value: str) -> Path:
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty: give a folder, or leave the option out")
    return Path(value)


if __name__ == "__main__":
    sys.exit(main())
