"""What ``make figures`` costs on this machine and whether it reproduces the committed numbers.

Training is bf16 where the hardware has it natively and fp32 elsewhere (:func:`nmu.train.resolve_precision`),
on as many threads as torch takes: both change the numbers and the time. Every notebook's manifest
records its machine (:func:`machine`: device, precision, threads and a calibration, the milliseconds of
one training step of the profile's model, :func:`calibrate`), so that another machine can say up front
whether it will reproduce the committed results and estimate its time by scaling their wall times by
the ratio of the two calibrations.

    python -m nmu.cost --profile quick --results results/quick    # what `make figures` prints first
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from nmu.data import DATASETS, base_name
from nmu.models import build_model
from nmu.profiles import Profile, get_profile
from nmu.storage import shown
from nmu.train import Recipe, default_device, fit, resolve_precision

CALIBRATION_STEPS = 4
"""Timed training steps of :func:`calibrate` (after one untimed step), the fastest counted."""


def device_name() -> str:
    """The GPU's name, else ``CPU <model> (<threads> threads)``."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """The vector instructions torch uses on this CPU (e.g. ``AVX512``), and its native bf16 (AMX, AVX512-BF16)."""
    native = [name for name, check in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
              if getattr(torch.cpu, check, lambda: False)()]
    return " + ".join([torch.backends.cpu.get_cpu_capability(), *native])


def calibrate(profile: str | Profile, steps: int = CALIBRATION_STEPS) -> float:
    """Milliseconds per training step of ``profile``'s model for its default dataset (its batch size,
    random images of the dataset's shape) on this machine, in this machine's precision: the fastest of
    ``steps`` steps, after one untimed step. A machine busy with other work measures slower."""
    profile = get_profile(profile)
    known = DATASETS[base_name(profile.dataset)]
    recipe = profile.recipe_for(profile.dataset)
    generator = torch.Generator().manual_seed(0)
    n = recipe.batch_size * (steps + 1)
    images = torch.randint(0, 256, (n, *known.shape), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, known.classes, (n,), generator=generator)
    model = build_model(profile.arch_for(profile.dataset), known.classes, [0.5] * known.shape[0], [0.25] * known.shape[0])
    short = Recipe(epochs=1, lr=1e-3, batch_size=recipe.batch_size, schedule="constant")
    times = []
    for step in range(steps + 1):  # the first, untimed: warm-up
        batch = slice(step * recipe.batch_size, (step + 1) * recipe.batch_size)
        start = time.perf_counter()
        fit(model, images[batch], labels[batch], short, seed=0, progress=False)
        times.append(time.perf_counter() - start)
    return round(1000 * min(times[1:]), 1)


def machine(profile: str | Profile) -> dict[str, Any]:
    """This machine as a manifest records it: device, CPU features, precision, torch threads, calibration
    (ms/step)."""
    return {"device": device_name(), "cpu": cpu_features(), "precision": resolve_precision("auto", default_device()),
            "threads": torch.get_num_threads(), "step_ms": calibrate(profile)}


def committed(results: str | Path) -> list[dict[str, Any]]:
    """The manifests of the notebook folders directly under ``results`` (one dict each, with ``folder``)."""
    out = []
    for path in sorted(Path(results).glob("*/manifest.json")):
        try:
            out.append({"folder": path.parent.name, **json.loads(path.read_text())})
        except (OSError, ValueError):
            continue
    return out


def estimate_seconds(manifests: list[dict[str, Any]], step_ms: float) -> float | None:
    """The manifests' wall times, each scaled by ``step_ms`` over its own calibration; None if some
    manifest has no calibration (results older than this module)."""
    scaled = [m["wall_seconds"] * step_ms / m["machine"]["step_ms"] for m in manifests
              if m.get("machine", {}).get("step_ms")]
    return sum(scaled) if manifests and len(scaled) == len(manifests) else None


def preflight(profile: str | Profile, results: str | Path) -> list[str]:
    """What ``make figures`` says before it starts: this machine, whether it reproduces the results in
    ``results`` (same precision and threads) and that it writes there, and the estimated time."""
    profile = get_profile(profile)
    here = machine(profile)
    lines = [f"this machine: {here['device']}, {here['cpu']}, precision {here['precision']}, "
             f"{here['threads']} torch thread(s), {here['step_ms']} ms per training step of the {profile.name} "
             "profile's model"]
    manifests, results = committed(results), shown(results)
    if not manifests:
        return lines + [f"no results in {results} yet: every notebook is computed there"]
    theirs = sorted({(m.get("machine", {}).get("precision"), m.get("machine", {}).get("threads", m.get("torch_threads")))
                     for m in manifests}, key=str)
    if any(p is None for p, _ in theirs):
        lines.append(f"the results in {results} record no precision (computed before nmu.cost): whether this "
                     "machine reproduces their numbers is unknown")
    else:
        origin = "; ".join(f"precision {p}, {t} thread(s)" for p, t in theirs)
        verdict = "this machine should reproduce them" if theirs == [(here["precision"], here["threads"])] else \
            "this machine will NOT reproduce their numbers (set NMU_PRECISION and OMP_NUM_THREADS to match, or " \
            "write elsewhere: RESULTS=results/mine)"
        lines.append(f"the results in {results} were computed with {origin}: {verdict}")
    lines.append(f"outputs go to {results}/ (each notebook's folder replaced when it is recomputed)")
    seconds = estimate_seconds(manifests, here["step_ms"])
    if seconds is not None:
        lines.append(f"estimated time from an empty cache: about {seconds / 60:.0f} min (their wall times, "
                     "scaled by the two calibrations; cached models and runs make it shorter)")
    else:
        total = sum(m.get("wall_seconds", 0) for m in manifests)
        lines.append(f"their wall times add up to {total / 60:.0f} min on their machine (no calibration recorded "
                     "to scale it to this one)")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="This machine against the committed results (make figures' preflight).")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--results", default=None, help="the results folder (default results/<profile>)")
    args = ap.parse_args(argv)
    for line in preflight(args.profile, args.results or f"results/{args.profile}"):
        print(f"nmu: {line}")


if __name__ == "__main__":
    main()
