"""Compute what the cache lacks as jobs: local subprocesses or a SLURM job array, through submitit.

    exp = Experiment("paper", executor={"kind": "slurm", "partition": "gpu", "timeout_min": 240})
    table = run_setting(exp, split, methods)   # submits the missing runs, waits, then reads the cache

An :class:`~nmu.experiment.Experiment`'s ``executor`` (a notebook's ``executor`` parameter,
``make figures EXECUTOR=...``) says where missing models and runs are computed: ``"inline"`` (the
default: in this process, one after another), ``"local"`` (one subprocess per job; on a GPU machine
each job gets its own GPU), ``"slurm"`` (one task of a SLURM job array per job), or a dict of
:class:`Executor` options such as ``{"kind": "slurm", "partition": "gpu", "timeout_min": 240}``.

Each missing artefact is one job: the original model, a retrained model, the reference metric
records of a split, one unlearning run with its metrics. :func:`compute_missing` (called by
:func:`nmu.runs.run_setting` and :func:`nmu.runs.trained_models`) submits them in two stages, the
trained models and then everything computed from them, waits with a progress bar of jobs done /
total, and returns; the caller then reads the cache as it always does, so the table made through jobs
is the table of the inline run. A job rebuilds the experiment from a small :class:`JobSpec` and calls
the same functions as the inline run (``Experiment.original``, ``Experiment.retrain``,
``artefacts.reference_records``, ``artefacts.cached_run``). They write into the content-addressed cache under
its per-key locks, so a job whose result is already cached does nothing and two jobs never train the
same model. Hence the jobs and the notebook must share the data root (``$NMU_DATA`` on a shared
filesystem) and compute the same cache keys (same code, device type, precision and, on a CPU, thread
count): every job checks this before it starts, and the notebook refuses jobs on another device type.

Failures: a diverged run (:class:`~nmu.train.NonFiniteLossError`) is a result, ``run_setting``'s
failed row, as inline. Any other failure or a time-out is reported (log files, what the job ran with
which hyperparameters, the error's last line) once the other jobs of its stage have finished, and
raised as :class:`JobsFailed`; the others' results stay cached, so a rerun submits only what is
still missing. See ``docs/cluster.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from nmu import cache
from nmu.artefacts import cached_run, reference_records, run_id, targets
from nmu.cache import checkpoint_key, is_cached
from nmu.experiment import Experiment
from nmu.splits import Split
from nmu.storage import data_root, progress_bar, progress_enabled
from nmu.train import NonFiniteLossError, default_device

KINDS = ("inline", "local", "slurm")
SLURM_ONLY = ("partition", "account", "cpus_per_job", "mem_gb", "slurm")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
"""A local job's time limit when none is given (submitit's own default is 2 minutes)."""
SLURM_TIMEOUT_MIN = 240


class JobsFailed(RuntimeError):
    """Some jobs failed or timed out; the message names each with its logs. The others' results are cached."""


class JobEnvironmentError(RuntimeError):
    """A job would compute under other cache keys than the notebook (device, code, threads...)."""


@dataclass(frozen=True)
class Executor:
    """Where and how jobs run. Parse a notebook's ``executor`` value with :meth:`parse`."""

    kind: str = "inline"
    """``inline`` (this process, no jobs), ``local`` (subprocesses) or ``slurm`` (a job array)."""
    gpus_per_job: int | None = None
    """GPUs per job; None: 1 where the notebook computes on a GPU, else 0 (it must match the
    notebook's device: the cache keys of a GPU and a CPU run differ)."""
    cpus_per_job: int | None = None
    """SLURM ``--cpus-per-task``; None: the notebook's CPU thread count (``torch.get_num_threads()``)."""
    timeout_min: float | None = None
    """Time limit of one job in minutes; None: 240 on SLURM, a week locally."""
    max_concurrent: int | None = None
    """Jobs running at once. SLURM: the array's ``%`` limit (None: 256, submitit's). Local, None: one
    per GPU (``gpus_per_job`` each), or CPU cores / threads per job without GPUs; more than the GPUs
    puts several jobs on a GPU."""
    partition: str | None = None
    """SLURM partition (None: the cluster's default)."""
    account: str | None = None
    """SLURM account to charge."""
    mem_gb: float | None = None
    """SLURM memory per job (None: the partition's default)."""
    setup: tuple[str, ...] = ()
    """Shell lines run before each job, e.g. ``["module load cuda", "source .venv/bin/activate"]``."""
    slurm: Mapping[str, Any] = field(default_factory=dict)
    """Any further parameter of submitit's ``SlurmExecutor`` (``qos``, ``constraint``, ``gres``,
    ``additional_parameters``...), overriding the above."""
    folder: str | None = None
    """Where job files and logs go; None: ``<data root>/jobs/<date-time>-<pid>/``."""
    poll_s: float | None = None
    """Seconds between looks at the jobs' states; None: 0.5 locally, 15 on SLURM."""

    @classmethod
    def parse(cls, value: Executor | str | Mapping[str, Any] | None) -> Executor:
        """``"inline" | "local" | "slurm"``, a dict (or YAML text of one) with ``kind`` and options, or an Executor."""
        if isinstance(value, Executor):
            return value
        if value is None:
            return cls()
        if isinstance(value, str) and value.strip().startswith("{"):
            value = yaml.safe_load(value)
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, Mapping):
            raise TypeError(f"executor must be 'inline', 'local', 'slurm' or a dict of options, got {value!r}")
        options = dict(value)
        kind = options.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"unknown executor kind {kind!r}; use one of {list(KINDS)}, e.g. "
                             "{'kind': 'slurm', 'partition': 'gpu'} (docs/cluster.md)")
        valid = [f.name for f in fields(cls) if f.name != "kind"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"unknown executor option(s) {unknown}; the options are {valid}")
        if kind == "inline" and options:
            raise ValueError(f"the inline executor takes no options, got {sorted(options)}")
        misplaced = sorted(set(options) & set(SLURM_ONLY)) if kind == "local" else []
        if misplaced:
            raise ValueError(f"option(s) {misplaced} apply to kind 'slurm' only")
        for name in ("gpus_per_job", "cpus_per_job", "max_concurrent"):
            v = options.get(name)
            least = 0 if name == "gpus_per_job" else 1
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < least):
                raise ValueError(f"executor option {name} must be a whole number >= {least}, got {v!r}")
        for name in ("timeout_min", "mem_gb", "poll_s"):
            v = options.get(name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < math.inf):
                raise ValueError(f"executor option {name} must be a positive finite number, got {v!r}")
        setup = options.get("setup", ())
        if isinstance(setup, str) or not all(isinstance(line, str) for line in setup):
            raise ValueError(f"executor option setup must be a list of shell lines, got {setup!r}")
        options["setup"] = tuple(setup)
        if not isinstance(options.get("slurm", {}), Mapping):
            raise ValueError(f"executor option slurm must be a dict of submitit SlurmExecutor parameters, "
                             f"got {options['slurm']!r}")
        return cls(kind=kind, **options)

    def resolved(self, device_type: str, threads: int) -> Executor:
        """The options with every default filled in for a notebook computing on ``device_type``
        with ``threads`` CPU threads; an error if the jobs would compute on another device type."""
        gpus = self.gpus_per_job if self.gpus_per_job is not None else int(device_type == "cuda")
        if (gpus > 0) != (device_type == "cuda"):
            where = "a GPU" if device_type == "cuda" else "the CPU"
            raise JobEnvironmentError(
                f"the notebook computes on {where} but gpus_per_job={gpus} would run the jobs on "
                f"{'GPUs' if gpus else 'CPUs'}: their models would be cached under other keys (device, "
                f"precision) and the notebook would not find them. Run the notebook where the jobs run "
                f"(docs/cluster.md) or leave gpus_per_job unset.")
        timeout = self.timeout_min or (SLURM_TIMEOUT_MIN if self.kind == "slurm" else LOCAL_TIMEOUT_MIN)
        poll = self.poll_s or (15.0 if self.kind == "slurm" else 0.5)
        return replace(self, gpus_per_job=gpus, cpus_per_job=self.cpus_per_job or threads, timeout_min=timeout,
                       poll_s=poll)

    def slurm_parameters(self, name: str = "nmu") -> dict[str, Any]:
        """submitit ``SlurmExecutor.update_parameters`` arguments of resolved options."""
        params: dict[str, Any] = {"job_name": name, "time": int(math.ceil(self.timeout_min)),
                                  "cpus_per_task": self.cpus_per_job, "nodes": 1, "ntasks_per_node": 1}
        if self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        for key in ("partition", "account"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb * 1024)}MB" if self.mem_gb % 1 else f"{int(self.mem_gb)}GB"
        if self.max_concurrent:
            params["array_parallelism"] = self.max_concurrent
        if self.setup:
            params["setup"] = list(self.setup)
        return {**params, **self.slurm}

    def local_slots(self, threads: int) -> list[tuple[int, ...]]:
        """The GPUs of each concurrent local job (``()`` = CPU only), one entry per job slot."""
        if not self.gpus_per_job:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            return [()] * (self.max_concurrent or max(1, cores // max(1, threads)))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        ids = [int(v) for v in visible] if all(v.strip().isdigit() for v in visible) and visible != [""] \
            else list(range(torch.cuda.device_count()))
        groups = [tuple(ids[i:i + self.gpus_per_job]) for i in range(0, len(ids) - self.gpus_per_job + 1,
                                                                       self.gpus_per_job)]
        if not groups:
            raise JobEnvironmentError(f"gpus_per_job={self.gpus_per_job} but this machine shows GPUs {ids}")
        return [groups[i % len(groups)] for i in range(self.max_concurrent or len(groups))]


@dataclass(frozen=True)
class JobSpec:
    """One job: what it computes and how to rebuild the notebook's experiment. Small and picklable."""

    kind: str
    """What it computes (:data:`nmu.artefacts.ARTEFACTS`): ``original``, ``retrain``, ``references`` (the
    retrain and original metric records) or ``unlearn``."""
    experiment: dict
    """``Experiment(**experiment)`` rebuilds the notebook's experiment in the job."""
    device_type: str
    threads: int
    """The notebook's ``torch.get_num_threads()``: part of the cache keys of CPU runs."""
    split: Split | None = None
    method: str | None = None
    seed: int = 0
    """The run's unlearning seed."""
    hparams: dict | None = None
    """The run's checked hyperparameters (:func:`nmu.artefacts.hyperparameters`)."""
    targets: dict = field(default_factory=dict)
    """``{checkpoint name: cache key fields}`` the job must write: what the notebook will read."""

    def __str__(self) -> str:
        where = f", {self.split.description}" if self.split is not None else ""
        data = f"{self.experiment['dataset']} / {self.experiment['arch']}"
        if self.kind == "unlearn":
            return f"unlearn {self.method} (seed {self.seed}, hparams {self.hparams}){where} [{data}]"
        return f"{self.kind}{where} [{data}]"


Group = tuple[Split, Sequence[tuple[str, int, Mapping[str, Any]]], bool]
"""``(split, [(method, unlearning seed, checked hyperparameters), ...], with the reference metrics?)``."""


def compute_missing(exp: Experiment, groups: Sequence[Group]) -> dict[tuple[str, int, str], str]:
    """Compute, as jobs of ``exp.executor``, everything the cache lacks for ``groups`` (:data:`Group`),
    then return ``{artefacts.run_id(method, seed, hparams): error}`` of the runs that diverged. Models
    first (one array), then the runs (one array); raises :class:`JobsFailed` after a stage in which
    jobs failed. Inline (the default executor): nothing to do."""
    ex = Executor.parse(exp.executor)
    if ex.kind == "inline":
        return {}
    stages = missing(exp, groups)
    if not any(stages):
        return {}
    threads = torch.get_num_threads()
    ex = ex.resolved(exp.device.type, threads)
    folder = _session_folder(ex, exp)
    total = sum(map(len, stages))
    print(f"nmu.jobs: {total} job(s) to run on {ex.kind} ({len(stages[0])} trained model(s), {len(stages[1])} "
          f"metric record(s) and unlearning run(s)); logs in {folder}", flush=True)
    diverged = {}
    for name, specs in zip(("models", "runs"), stages):
        if not specs:
            continue
        outcomes = _run_stage(ex, specs, _stage_folder(folder, name), name, threads, progress_enabled(exp.progress))
        failed = [(spec, job, err) for spec, job, result, err in outcomes if err is not None]
        diverged |= {run_id(spec.method, spec.seed, spec.hparams): result["diverged"]
                     for spec, job, result, err in outcomes if result and result.get("diverged")}
        if failed:
            raise JobsFailed(_report(failed, len(specs), name))
    return diverged


def missing(exp: Experiment, groups: Sequence[Group]) -> tuple[list[JobSpec], list[JobSpec]]:
    """The jobs :func:`compute_missing` would submit: ``(models, runs)``, each without what is cached
    and without duplicates."""
    base = {"profile": exp.profile, "dataset": exp.dataset_name, "arch": exp.arch, "init_seed": exp.init_seed,
            "data_seed": exp.data_seed, "split_seed": exp.split_seed, "precision": exp.precision,
            "recipe": exp.recipe.to_dict(),
            "root": str(exp.root if exp.root is not None else data_root())}
    models: list[JobSpec] = []
    runs: list[JobSpec] = []
    seen: set = set()

    def add(stage: list[JobSpec], kind: str, split: Split | None = None, method: str | None = None, seed: int = 0,
            hp: Mapping[str, Any] | None = None) -> None:
        writes = targets(exp, kind, split, method, seed, hp)
        key = tuple(sorted((name, checkpoint_key(f)) for name, f in writes.items()))
        if key in seen or all(is_cached(name, f, exp.root) for name, f in writes.items()):
            return
        seen.add(key)
        stage.append(JobSpec(kind, base, exp.device.type, torch.get_num_threads(), split, method, seed,
                             dict(hp) if hp is not None else None, _jsonable(writes)))

    add(models, "original")
    for split, group_runs, references in groups:
        add(models, "retrain", split)
        if references:
            add(runs, "references", split)
        for method, seed, hp in group_runs:
            add(runs, "unlearn", split, method, seed, hp)
    return models, runs


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def run_job(spec: JobSpec) -> dict:
    """The body of every job: rebuild the experiment, check it keys the cache as the notebook does,
    and compute ``spec`` with the inline code. Returns ``{"status": "computed" | "cached" |
    "diverged", ...}``; a diverged run is not an error of the job."""
    start = time.time()
    device = default_device()
    if device.type != spec.device_type:
        raise JobEnvironmentError(
            f"this job computes on {device.type} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}) "
            f"but the notebook on {spec.device_type}: the models would be cached under other keys")
    if device.type == "cpu":
        torch.set_num_threads(spec.threads)  # a CPU model's weights, hence its key, depend on it
    exp = Experiment(**spec.experiment, device=device, progress=False)
    mine = _jsonable(targets(exp, spec.kind, spec.split, spec.method, spec.seed, spec.hparams))
    if mine != spec.targets:
        raise JobEnvironmentError(_key_difference(spec.targets, mine))
    print(f"nmu job on {socket.gethostname()} ({device}, {torch.get_num_threads()} threads): {spec}", flush=True)
    result = {"host": socket.gethostname(), "device": str(device)}
    builds = cache.builds()
    try:
        if spec.kind == "original":
            exp.original()
        elif spec.kind == "retrain":
            exp.retrain(spec.split)
        elif spec.kind == "references":
            reference_records(exp, spec.split)
        else:
            cached_run(exp, spec.split, spec.method, spec.hparams, seed=spec.seed)
        result["status"] = "computed" if cache.builds() > builds else "cached"  # e.g. by another job meanwhile
    except NonFiniteLossError as err:  # a result (run_setting's failed row), not a failure of the job
        result |= {"status": "diverged", "diverged": str(err)}
    result["seconds"] = time.time() - start
    print(f"nmu job {result['status']} in {result['seconds']:.1f} s", flush=True)
    return result


def _key_difference(expected: dict, got: dict) -> str:
    lines = []
    for name in sorted(set(expected) | set(got)):
        a, b = expected.get(name, {}), got.get(name, {})
        lines += [f"  {name}.{k}: notebook {a.get(k)!r}, job {b.get(k)!r}" for k in sorted(set(a) | set(b))
                  if a.get(k) != b.get(k)]
    return ("this job would compute under other cache keys than the notebook reads, so its results would be "
            "lost. Differences:\n" + "\n".join(lines) + f"\nThe job runs {sys.executable} with nmu from "
            f"{Path(__file__).resolve().parent}: use the notebook's environment and code (and, on CPUs, its thread "
            "count).")


_SESSION: dict[str, Path] = {}
_STAGES = itertools.count(1)


def _session_folder(ex: Executor, exp: Experiment) -> Path:
    """``<folder or data root/jobs>/<date-time>-<pid>/``: one per notebook process."""
    base = Path(ex.folder).expanduser() if ex.folder else (exp.root or data_root()) / "jobs"
    key = str(base)
    if key not in _SESSION:
        _SESSION[key] = base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return _SESSION[key]


def _stage_folder(folder: Path, name: str) -> Path:
    path = folder / f"{next(_STAGES):03d}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_stage(ex: Executor, specs: list[JobSpec], folder: Path, name: str, threads: int, progress: bool
               ) -> list[tuple[JobSpec, Any, dict | None, BaseException | None]]:
    """Run ``specs`` as jobs and wait for all; ``[(spec, job, result or None, error or None)]``."""
    bar = progress_bar(progress=progress, total=len(specs), desc=f"{name} jobs ({ex.kind})", unit="job")
    try:
        jobs = _run_slurm(ex, specs, folder, name, bar) if ex.kind == "slurm" else \
            _run_local(ex, specs, folder, threads, bar)
    finally:
        bar.close()
    outcomes = []
    for spec, job in zip(specs, jobs):
        err = job.exception()
        outcomes.append((spec, job, job.result() if err is None else None, err))
    done = sum(err is None for *_, err in outcomes)
    print(f"nmu.jobs: {name}: {done}/{len(specs)} jobs done"
          + (f", {len(specs) - done} failed" if done < len(specs) else "") + f" ({folder})", flush=True)
    return outcomes


def _run_slurm(ex: Executor, specs: list[JobSpec], folder: Path, name: str, bar) -> list:
    import submitit

    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**ex.slurm_parameters(f"nmu-{name}"))
    jobs = executor.map_array(run_job, specs)
    print(f"nmu.jobs: submitted SLURM job {jobs[0].job_id.split('_')[0]}: {len(jobs)} {name} job(s)", flush=True)
    _wait(jobs, ex.poll_s, bar)
    return jobs


def _run_local(ex: Executor, specs: list[JobSpec], folder: Path, threads: int, bar) -> list:
    """submitit's LocalExecutor starts every job it is given at once: this keeps one job per slot
    (its GPUs, see :meth:`Executor.local_slots`) and starts the next as one finishes."""
    import submitit

    executor = submitit.LocalExecutor(folder=folder)
    slots = ex.local_slots(threads)
    jobs: list = [None] * len(specs)
    running: dict[int, int] = {}  # slot -> spec index
    pending = list(range(len(specs)))
    try:
        while pending or running:
            for slot in range(len(slots)):
                if slot not in running and pending:
                    i = pending.pop(0)
                    executor.update_parameters(timeout_min=ex.timeout_min, gpus_per_node=len(slots[slot]),
                                               visible_gpus=slots[slot], setup=list(ex.setup))
                    jobs[i] = executor.submit(run_job, specs[i])
                    running[slot] = i
            time.sleep(ex.poll_s)
            for slot, i in list(running.items()):
                if jobs[i].done():
                    del running[slot]
                    bar.update(1)
    except BaseException:  # KeyboardInterrupt included: stop what this stage started
        for i in running.values():
            jobs[i].cancel(check=False)
        raise
    return jobs


def _wait(jobs: list, poll_s: float, bar) -> None:
    try:
        finished = 0
        while finished < len(jobs):
            time.sleep(poll_s)
            now = sum(job.done() for job in jobs)
            bar.update(now - finished)
            finished = now
    except BaseException:
        print(f"nmu.jobs: interrupted, cancelling SLURM job {jobs[0].job_id.split('_')[0]}", flush=True)
        for job in jobs:
            job.cancel(check=False)
        raise


def _report(failed: list, total: int, name: str) -> str:
    lines = [f"{len(failed)} of {total} {name} job(s) failed; the others' results are cached, and running "
             "again submits only what is missing:"]
    for spec, job, err in failed:
        lines += [f"- {spec} [job {job.job_id}]", f"    {_last_line(err)}",
                  f"    logs: {job.paths.stderr}", f"          {job.paths.stdout}"]
    return "\n".join(lines)


def _last_line(err: BaseException) -> str:
    """The line of a job's error that says what went wrong (the traceback's last line)."""
    text = str(err)
    if "with trace:" in text:
        trace = text.split("with trace:", 1)[1].split("-" * 22)
        body = trace[1] if len(trace) > 1 else trace[0]
        lines = [line for line in body.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else text.splitlines()[0]
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    state = "timed out or was killed: " if "has not produced any output" in text else ""
    return f"{state}{type(err).__name__}: {first}"


DRY_RUN_FOLDER = "/path/to/NMU_DATA/jobs/<date-time>-<pid>/{stage}"
"""Where :func:`sbatch_script` says the job files would go (``{stage}``: ``001-models`` or ``002-runs``)."""


def sbatch_script(executor: Executor | str | Mapping, n_jobs: int, *,
                  folder: str | Path = DRY_RUN_FOLDER.format(stage="001-models"),
                  device_type: str = "cuda", threads: int = 8, name: str = "nmu-models") -> str:
    """The sbatch file submitit writes to submit ``n_jobs`` jobs as one array with ``executor``'s
    SLURM options, made without a cluster (for reading and checking, not for submitting)."""
    import submitit

    class DrySlurmExecutor(submitit.SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:  # no srun needed: nothing is submitted
            return 2

    ex = Executor.parse(executor)
    if ex.kind != "slurm":
        raise ValueError(f"sbatch_script needs a slurm executor, got kind {ex.kind!r}")
    sx = DrySlurmExecutor(folder=folder)
    sx.update_parameters(**ex.resolved(device_type, threads).slurm_parameters(name))
    if n_jobs > 1:  # what SlurmExecutor does for map_array: one sbatch file with --array
        sx.parameters["map_count"] = n_jobs
    return sx._make_submission_file_text(sx._submitit_command_str, "dry-run")


def _at_least_one(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nmu.jobs", description="Print the sbatch file of a job "
                                     "array nmu would submit (nothing is submitted).")
    parser.add_argument("--executor", default="slurm", help="YAML: slurm, or {kind: slurm, partition: gpu, ...}")
    parser.add_argument("--jobs", type=_at_least_one, required=True, help="array size")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="the notebook's device")
    parser.add_argument("--threads", type=int, default=8, help="the notebook's torch.get_num_threads()")
    parser.add_argument("--stage", default="models", choices=["models", "runs"],
                        help="models (original, retrain) or runs (reference metrics, unlearning runs)")
    parser.add_argument("--folder", default=None, help="where the job files would go")
    args = parser.parse_args(argv)
    folder = args.folder or DRY_RUN_FOLDER.format(stage={"models": "001-models", "runs": "002-runs"}[args.stage])
    print(sbatch_script(yaml.safe_load(args.executor), args.jobs, folder=folder, device_type=args.device,
                        threads=args.threads, name=f"nmu-{args.stage}"))


if __name__ == "__main__":
    main()
