"""Figures (PNG + PDF), tables (Markdown + CSV) and run manifests for ``results/``.

Every notebook starts with ``report = nmu.report.start("<notebook>", globals())`` right after its
``parameters`` cell and ends with ``report.finish()``, so every output is written the same way:
checked parameters, atomically, into one whole run's folder next to a manifest that records how
it was made (git commit, package versions, device, threads, parameters, wall time).
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import shutil
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nmu.cost import device_name, machine
from nmu.data import known_names
from nmu.plots import metric_bars, seed_points, spread_label
from nmu.profiles import PROFILES, get_profile
from nmu.stats import paired, summarize, with_ci
from nmu.storage import atomic_write, shown, writer_gone, writer_tag
from nmu.train import default_device, gpu_mode

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn", "papermill")


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.png`` (150 dpi) and ``.pdf``, each with the figure's title
    (:func:`figure_title`) as its ``Title`` metadata, so a file says what it shows wherever it is copied."""
    paths = []
    title = figure_title(fig)
    metadata = {"Title": title} if title else None
    for ext in ("png", "pdf"):
        path = Path(out_dir) / f"{name}.{ext}"
        atomic_write(path, lambda tmp, e=ext: fig.savefig(tmp, format=e, dpi=150, bbox_inches="tight",
                                                          metadata=metadata))
        paths.append(path)
    return paths


def figure_title(fig) -> str:
    """A figure's title: its suptitle, else the title of its one axes (or of its first that has one)."""
    return fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")


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


def environment() -> dict[str, Any]:
    """Where a result was computed: git commit, package versions, Python, device, torch threads (and
    on a GPU the cuDNN mode and CUDA graphs, :func:`nmu.train.gpu_mode`)."""
    gpu = gpu_mode(default_device())
    return {"git_commit": _git_commit(), "packages": _versions(), "python": platform.python_version(),
            "device": device_name(), "torch_threads": torch.get_num_threads(), **({"gpu": gpu} if gpu else {})}


def _git_commit() -> str:
    """The checkout's commit (``-dirty`` if its code differs), or ``$NMU_GIT_COMMIT`` where set (a copy
    of the tree without its git folder, e.g. on a remote machine), else ``unknown``."""
    if os.environ.get("NMU_GIT_COMMIT"):
        return os.environ["NMU_GIT_COMMIT"]
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


REPO = Path(__file__).resolve().parent.parent
"""The source checkout (relative ``out_dir`` values resolve against it, not the kernel's cwd)."""
PLAIN = (type(None), bool, int, float, str, list, tuple, dict)
"""Types a notebook parameter can have (what papermill can inject)."""
IPYTHON_NAMES = {"In", "Out", "exit", "quit", "open", "get_ipython"}
PARTIAL_MAX_AGE = 7 * 24 * 3600.0
"""A partial output folder of another host's run is left alone until it is this old (seconds)."""


class NotebookParameterError(TypeError):
    """A papermill parameter that the notebook does not declare, or of the wrong type."""


class OutDirError(ValueError):
    """An ``out_dir`` a notebook may not replace with its outputs (see :class:`Report`)."""


def start(notebook: str, namespace: dict[str, Any]) -> Report:
    """Start a notebook's report: call it from the cell after the ``parameters`` cell with ``globals()``.

    The notebook's parameters are the plain values (numbers, strings, lists, dicts, None) of its
    namespace; where the template ``notebooks/<notebook>.ipynb`` is found, they are checked against
    the assignments of its ``parameters`` cell: a name it does not declare (a misspelt ``-p``) is an
    error naming the valid ones, and a value whose type differs from the declared default's (or the
    type comment's, e.g. ``methods = None  # type: list[str]|None``, which papermill reads too;
    elements of a list are checked against ``list[...]`` or the default's elements) is an error
    naming the expected type. ``profile`` must be a profile's name. ``out_dir`` = None means
    :func:`default_out_dir` (``results/<profile>/<notebook>``, or ``results/<profile>/<dataset>/<notebook>``
    on data other than the profile's); a relative one is taken from the repository root. An
    ``out_dir`` that :class:`Report` may not replace is refused here, before anything is computed."""
    given = {k: v for k, v in namespace.items()
             if not k.startswith("_") and k not in IPYTHON_NAMES and isinstance(v, PLAIN)}
    declared = declared_parameters(REPO / "notebooks" / f"{notebook}.ipynb")
    if declared is not None:
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise NotebookParameterError(f"{notebook}: unknown parameter(s) {unknown}; its parameters are "
                                         f"{sorted(declared)} (a misspelt papermill -p? In Jupyter, a variable "
                                         "defined before this cell: restart the kernel and run from the top)")
        for name, (default, annotation) in declared.items():
            if name in given:
                _check_parameter(notebook, name, given[name], default, annotation)
        given = {name: given[name] for name in declared if name in given}
    if "profile" in given:
        get_profile(given["profile"])
    out_dir = given.get("out_dir")
    if out_dir is None:
        out_dir = default_out_dir(notebook, given)
    out_dir = Path(out_dir).expanduser()
    return Report(notebook, given, out_dir if out_dir.is_absolute() else REPO / out_dir)


def default_out_dir(notebook: str, parameters: dict[str, Any]) -> Path:
    """Where a notebook's outputs go when its ``out_dir`` is None, relative to the repository root:
    ``results/<profile>/<notebook>`` on the profile's own data (``dataset`` None or the profile's
    dataset; ``datasets`` None or the profile's sample-wise datasets), else
    ``results/<profile>/<dataset>/<notebook>`` (several: ``<a>+<b>``; an image-folder tree: its folder's
    name), so that a run on other data never replaces the profile's results."""
    profile = str(parameters.get("profile", "default"))
    own = PROFILES.get(profile)
    other = []
    if parameters.get("dataset") is not None and (own is None or parameters["dataset"] != own.dataset):
        other.append(parameters["dataset"])
    if parameters.get("datasets") is not None and (own is None or set(parameters["datasets"]) != set(own.sample_wise)):
        other.extend(parameters["datasets"])
    folder = Path("results") / profile
    if other:
        folder /= "+".join(dict.fromkeys(_data_folder_name(str(d)) for d in other))
    return folder / notebook


def _data_folder_name(dataset: str) -> str:
    """A dataset's name in a results path: a known name as it is, a folder tree by its folder's name."""
    return dataset if dataset in known_names() else Path(dataset).expanduser().resolve().name or "data"


def declared_parameters(template: Path) -> dict[str, tuple[Any, str | None]] | None:
    """``{name: (default, type)}`` of the ``parameters`` cell of a notebook file (the type from an
    annotation or a ``# type:`` comment, else None), or None if there is no such file."""
    if not template.is_file():
        return None
    cells = json.loads(template.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{template} needs exactly one cell tagged 'parameters', found {len(tagged)}")
    out = {}
    for node in ast.parse("".join(tagged[0]["source"]), type_comments=True).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            kind = node.type_comment.split()[0] if node.type_comment else None
            out[node.targets[0].id] = (ast.literal_eval(node.value), kind)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = (ast.literal_eval(node.value) if node.value is not None else None,
                                   ast.unparse(node.annotation))
    return out


TYPE_NAMES = {"None": type(None), "bool": bool, "int": int, "float": float, "str": str, "list": list,
              "tuple": tuple, "dict": dict}


def _check_parameter(notebook: str, name: str, value: Any, default: Any, annotation: str | None) -> None:
    if annotation is not None:
        kinds = [t.strip() for t in annotation.split("|")]
        allowed = tuple(TYPE_NAMES[t.split("[")[0]] for t in kinds)
        element = next((t.split("[")[1].rstrip("]") for t in kinds if t.startswith("list[")), None)
    elif default is None:
        return
    else:
        allowed = (type(default),)
        element = _element_type(default)
    _check_type(notebook, name, value, allowed)
    if element is not None and isinstance(value, (list, tuple)):
        for item in value:
            _check_type(notebook, f"{name} element", item, (TYPE_NAMES[element],), whole=value)


def _element_type(default: Any) -> str | None:
    """The type name every element of a list default shares, if it is a list of one plain type."""
    kinds = {type(v).__name__ for v in default} if isinstance(default, list) else set()
    return kinds.pop() if len(kinds) == 1 and kinds <= {"int", "float", "str"} else None


def _check_type(notebook: str, name: str, value: Any, allowed: tuple[type, ...], whole: Any = None) -> None:
    if float in allowed:
        allowed += (int,)
    if list in allowed:
        allowed += (tuple,)
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
        expected = " or ".join(t.__name__ for t in dict.fromkeys(allowed))
        hint = " (pass lists and dicts as YAML: papermill -y 'methods: [natmu, rl]')" if list in allowed or dict in allowed else ""
        inside = f" in {whole!r}" if whole is not None else ""
        raise NotebookParameterError(f"{notebook}: parameter {name}={value!r}{inside} must be {expected}, got "
                                     f"{type(value).__name__}{hint}")


class Report:
    """A notebook run's outputs: figures and tables go to a fresh folder beside ``out_dir``, which
    :meth:`finish` (with the manifest) swaps into place, so ``out_dir`` always holds one whole run.

    ``out_dir`` (a symlink stands for its target) is replaced only when it is new, empty or an
    earlier run of this notebook (its ``manifest.json`` names the notebook); the repository,
    ``results/``, a profile's results folder, the home folder and every folder above them are
    refused (:class:`OutDirError`)."""

    def __init__(self, notebook: str, parameters: dict[str, Any], out_dir: Path):
        self.notebook, self.parameters, self.out_dir = notebook, parameters, Path(out_dir).resolve()
        self.start = time.time()
        self._check_out_dir()
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.out_dir.parent, self.out_dir.name)
        self.work = self.out_dir.parent / f".{self.out_dir.name}.partial-{writer_tag()}"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir()

    def _check_out_dir(self) -> None:
        """Raise :class:`OutDirError` unless :meth:`finish` may replace ``out_dir`` (see the class)."""
        out = self.out_dir
        results = REPO / "results"
        protected = [REPO, results, Path.home(),
                     *(results / p for p in {*PROFILES, str(self.parameters.get("profile", "default"))})]
        hit = next((p for p in protected if p.resolve().is_relative_to(out)), None)
        if hit is not None:
            raise OutDirError(f"{self.notebook}: out_dir {out} is or holds {hit.resolve()}, which a notebook's "
                              f"outputs may not replace; use a folder of its own, e.g. {results / 'mine' / self.notebook}")
        if not out.exists():
            return
        if not out.is_dir():
            raise OutDirError(f"{self.notebook}: out_dir {out} is a file, not a folder; choose another out_dir")
        if any(out.iterdir()) and _manifest_notebook(out) != self.notebook:
            raise OutDirError(f"{self.notebook}: out_dir {out} holds files that are not an earlier run of this notebook "
                              f"(no manifest.json of {self.notebook!r} there), and its outputs would replace them all. "
                              f"Choose a new or empty folder, e.g. {out / self.notebook}")

    def __repr__(self) -> str:
        return f"Report({self.notebook!r} -> {self.out_dir})"

    def figure(self, fig, name: str) -> None:
        """Save ``fig`` as ``<name>.png`` and ``.pdf``."""
        save_figure(fig, self.work, name)

    def table(self, df: pd.DataFrame, name: str, floatfmt: str = ".2f") -> None:
        """Save ``df`` as ``<name>.csv`` and ``.md`` (see :func:`save_table`)."""
        save_table(df, self.work, name, floatfmt)

    def comparison(self, runs: pd.DataFrame, metrics: list[str], name: str, title: str) -> pd.DataFrame:
        """The outputs of a comparison notebook from its ``runs`` (every setting's table of runs, one
        row per run): ``runs`` (every metric), ``summary`` (per setting and method, the mean over
        experiment seeds and its 95 % CI, the seeds that failed counted apart), ``paired`` (NatMU minus each rival in Avg. Gap, paired by
        experiment seed), bars of ``metrics`` (``<name>``) and the Avg. Gap of each seed
        (``<name>_seeds``). Returns the headline: Avg. Gap as "mean ± CI" with the main metrics and the
        forgetting achieved (1 = as far as retraining took D_f accuracy, 0 = nothing forgotten)."""
        summary = summarize(runs)
        self.table(runs.drop(columns=["hparams"]), "runs")
        self.table(summary, "summary")
        self.table(paired(runs, "natmu") if "natmu" in set(runs["method"]) else pd.DataFrame(), "paired")
        panel = ["dataset", "split"]
        about = f"{title}, {hyperparameters_note(self.parameters)}"
        spread = spread_label(summary, runs["exp_seed"].unique() if "exp_seed" in runs else None)
        self.figure(metric_bars(summary, metrics, panel=panel, title=f"{about} ({spread})"), name)
        self.figure(seed_points(runs, "avg_gap", panel, title=about), f"{name}_seeds")
        return with_ci(summary, ["avg_gap"])[[*panel, "method", "acc_test", "acc_forget", "mia_entropy",
                                              "forgetting_achieved", "avg_gap", "n", "failed"]].round(2)

    def text(self, content: str, name: str) -> None:
        """Save ``content`` as the file ``name`` (e.g. ``presets.yaml``)."""
        atomic_write(self.work / name, lambda tmp: tmp.write_text(content))

    def finish(self, **extra: Any) -> None:
        """Write ``manifest.json`` (commit, packages, device, threads, parameters, wall time, and the
        machine: precision and a calibration, :func:`nmu.cost.machine`, timed after the wall time) and
        put this run's folder in place of ``out_dir``."""
        wall = round(time.time() - self.start, 1)
        body = {"notebook": self.notebook, "parameters": self.parameters, **environment(),
                "machine": machine(self.parameters.get("profile", "quick")),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.start)),
                "wall_seconds": wall, **extra}
        atomic_write(self.work / "manifest.json",
                     lambda tmp: tmp.write_text(json.dumps(body, indent=2, default=str) + "\n"))
        try:
            self._check_out_dir()  # again: the folder may have been filled since the start
        except OutDirError as err:
            raise OutDirError(f"{err}. This run's outputs are in {self.work}: move them before running again") from None
        old = self.out_dir.parent / f".{self.out_dir.name}.old-{os.getpid()}"
        if self.out_dir.exists():
            os.replace(self.out_dir, old)
        os.replace(self.work, self.out_dir)
        shutil.rmtree(old, ignore_errors=True)
        print(f"{self.notebook}: outputs in {shown(self.out_dir)}")


def hyperparameters_note(parameters: dict[str, Any]) -> str:
    """Which hyperparameters a comparison ran with, for its figures' titles: the profile's presets and
    the notebook's ``overrides`` of them, e.g. ``quick presets with natmu head_reinit=False``."""
    overrides = parameters.get("overrides") or {}
    changed = "; ".join(f"{method} " + ", ".join(f"{k}={v}" for k, v in values.items())
                        for method, values in overrides.items() if values)
    return f"{parameters.get('profile', 'quick')} presets" + (f" with {changed}" if changed else "")


def _manifest_notebook(folder: Path) -> str | None:
    """The notebook named by ``folder/manifest.json``, or None."""
    try:
        return json.loads((folder / "manifest.json").read_text()).get("notebook")
    except (OSError, ValueError, AttributeError):
        return None


def remove_stale_partials(folder: Path, name: str | None = None) -> list[Path]:
    """Delete the work folders (``.<name>.partial-<writer>``) in ``folder`` of notebook runs whose writer
    is gone (:func:`nmu.storage.writer_gone`); ``name``: one notebook's out_dir name, else every one."""
    pattern = re.compile(rf"\.({re.escape(name) if name else '.+'})\.partial-(?:([0-9a-f]{{8}})-)?(\d+)")
    removed = []
    for stale in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = pattern.fullmatch(stale.name)
        if match and writer_gone(match[2], int(match[3]), stale, PARTIAL_MAX_AGE):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def main(argv: list[str] | None = None) -> None:
    """``python -m nmu.report clean FOLDER...`` (``make clean``): remove the work folders of interrupted
    notebook runs in each FOLDER and its subfolders."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m nmu.report")
    ap.add_argument("command", choices=["clean"])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for folder in args.folders:
        for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir() and ".partial-" not in str(p))]:
            for path in remove_stale_partials(sub):
                print(f"nmu: removed {path}, the work folder of an interrupted notebook run")


if __name__ == "__main__":
    main()
