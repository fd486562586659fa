"""Is SalUn's SVC attack stable when fitted on a balanced sample? Full fit vs the sample, side by side.

``nmu.metrics.svc_forget_efficacy`` fits its RBF SVC on ``SVC_FIT_PER_SIDE`` members and as many
non-members instead of all of D_r and D_t (the fit's cost grows with the square of its size). For the
original, retrained and some unlearned models of one split, this prints the efficacy of the full fit,
the mean, spread and largest deviation over several sample seeds, and the seconds each fit takes.

    python bench/studies/svc_sample.py --profile quick --methods natmu rl salun ft
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from nmu.experiment import Experiment
from nmu.metrics import SVC_FIT_PER_SIDE, Outputs, svc_forget_efficacy
from nmu.artefacts import cached_run, hyperparameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--methods", nargs="*", default=["natmu", "rl", "salun"])
    ap.add_argument("--per-side", type=int, default=SVC_FIT_PER_SIDE)
    ap.add_argument("--sample-seeds", type=int, default=5)
    args = ap.parse_args()
    exp = Experiment(args.profile, args.dataset, progress=False)
    split = exp.split("random", fraction=args.fraction)
    models = {"original": exp.original().model, "retrain": exp.retrain(split).model}
    models |= {m: cached_run(exp, split, m, hyperparameters(exp, m, split.kind))[0] for m in args.methods}
    d = exp.data
    rows = []
    for name, model in models.items():
        sets = [Outputs.of(model, *s(d), exp.device) for s in (split.retain_set, lambda d: (d.test_images, d.test_labels),
                                                               split.forget_set)]
        start = time.perf_counter()
        full = svc_forget_efficacy(*sets, per_side=None)
        full_s = time.perf_counter() - start
        start = time.perf_counter()
        sampled = np.array([svc_forget_efficacy(*sets, seed=s, per_side=args.per_side) for s in range(args.sample_seeds)])
        sample_s = (time.perf_counter() - start) / args.sample_seeds
        rows.append({"model": name, "full fit (%)": full, f"{args.per_side}/side mean (%)": sampled.mean(),
                     "std over sample seeds": sampled.std(ddof=1), "max |sample - full|": np.abs(sampled - full).max(),
                     "full fit s": full_s, "sample fit s": sample_s})
    print(f"{exp}\n{split.description}: SVC forget efficacy, full fit ({len(split.retain)} + {len(d.test_labels)} "
          f"points, balanced to the smaller) vs {args.per_side} + {args.per_side}, {args.sample_seeds} sample seeds\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
