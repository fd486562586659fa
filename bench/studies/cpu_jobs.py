"""`make figures` on a CPU: one process using every core vs one-thread jobs side by side, timed on the same work.

    python bench/studies/cpu_jobs.py              # quick CIFAR-10, random 10 %: original, retrain (3 epochs), every method

The same work runs twice, each time in a fresh data root (so nothing is cached): ``inline`` in one
process with all ``--threads`` threads (what ``make figures`` does by default), then as ``local``
jobs of one thread each, ``--threads`` at a time (``OMP_NUM_THREADS=1 make figures EXECUTOR=local``).
Small models use several cores poorly, so jobs side by side finish sooner, each job paying for a
Python start and reloading its inputs. Decoding the data set is not timed. Prints both wall times
and their ratio. (The two variants compute under different cache keys: the thread count changes
floating-point reductions, see the README's "Reproducibility".)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ["natmu", "rl", "salun", "badteacher", "ft", "ga", "l1sparse", "scrub", "bs", "ssd"]


def child(variant: str, threads: int, epochs: int, archive: str) -> None:
    import torch

    from nmu.archives import unpack
    from nmu.data import load_dataset
    from nmu.experiment import Experiment
    from nmu.profiles import get_profile
    from nmu.runs import run_setting

    torch.set_num_threads(threads if variant == "inline" else 1)
    unpack(archive)  # into this fresh data root, then decoded once: untimed
    load_dataset("cifar10")
    start = time.perf_counter()
    exp = Experiment("quick", "cifar10", seed=0, progress=False,
                     executor="inline" if variant == "inline" else {"kind": "local", "max_concurrent": threads},
                     recipe=get_profile("quick").recipe_for("cifar10").with_(epochs=epochs))
    table = run_setting(exp, exp.split("random", fraction=0.1), METHODS)
    print(json.dumps({"variant": variant, "seconds": time.perf_counter() - start,
                      "threads": torch.get_num_threads(), "rows": len(table)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--epochs", type=int, default=3, help="of the original and retrained models")
    ap.add_argument("--archive", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.xz"),
                    help="the CIFAR-10 archive (default: ../shared/data/cifar10-jpeg.tar.xz beside the checkout)")
    ap.add_argument("--child", choices=["inline", "local"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.threads, args.epochs, args.archive)
    results = {}
    for variant in ("inline", "local"):
        with tempfile.TemporaryDirectory(prefix="nmu-cpu-jobs-") as root:
            env = {**os.environ, "NMU_DATA": root, "NMU_PROGRESS": "0",
                   "OMP_NUM_THREADS": str(args.threads if variant == "inline" else 1)}
            out = subprocess.run([sys.executable, __file__, "--child", variant, "--threads", str(args.threads),
                                  "--epochs", str(args.epochs), "--archive", args.archive], env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the {variant} run failed:\n{out.stderr[-3000:]}")
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{variant:>6}: {results[variant]['seconds']:7.1f} s ({results[variant]['rows']} rows)", flush=True)
    ratio = results["inline"]["seconds"] / results["local"]["seconds"]
    print(f"RATIO inline ({args.threads} threads) / local ({args.threads} one-thread jobs) = {ratio:.2f}x")


if __name__ == "__main__":
    main()
