"""Unlearning run time as a fraction of retraining, measured side by side in one process.

Runs retraining (``Experiment.train``, the uncached training behind ``Experiment.retrain``) and
the chosen methods on one split of a profile, one after the other, and prints wall-clock seconds (CUDA-synchronised), optimiser steps and the ratio to
retraining. Run it on an otherwise idle machine: the ratio is the result, seconds are local.

    python bench/unlearn_runtime.py --profile quick --fraction 0.1 --methods natmu rl salun
"""

from __future__ import annotations

import argparse
import math

import torch

from nmu.experiment import Experiment
from nmu.runs import hyperparameters
from nmu.unlearn import unlearn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--methods", nargs="+", default=["natmu"])
    args = ap.parse_args()
    exp = Experiment(args.profile, args.dataset, progress=False)
    split = exp.split("random", fraction=args.fraction)
    original = exp.original().model
    print(f"{exp}\n{split.description}: |D_f| = {split.forget.size}, |D_r| = {split.retain.size}, "
          f"{torch.get_num_threads()} threads")
    retrain = exp.train(split, desc="retrain")[1]
    steps = exp.recipe.epochs * math.ceil(split.retain.size / exp.recipe.batch_size)
    print(f"  {'retrain':<10s} {retrain.seconds:8.1f} s  {steps:6d} steps  ratio 1.000")
    common = dict(seed=0, device=exp.device, precision=exp.precision, progress=False,
                  crop_padding=exp.recipe.crop_padding)
    for method in args.methods:
        hp = hyperparameters(exp, method, "random")
        result = unlearn(method, original, exp.data, split, **common, **hp)
        print(f"  {method:<10s} {result.seconds:8.1f} s  {'':6s}       ratio {result.seconds / retrain.seconds:.3f}"
              f"   ({hp})")


if __name__ == "__main__":
    main()
