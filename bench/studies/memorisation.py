"""How much a profile's original model memorises, for a few training lengths: what makes unlearning hard.

For each epoch count, trains (through the checkpoint cache) the original and the retrained model of
one experiment on a random forget set, and prints training seconds, train and test accuracy, and
D_f accuracy of the original against the retrained model's: the **gap** is what an unlearning method
must remove (an original that never memorised D_f leaves little to forget). Use it to weigh a
cheaper recipe before changing a profile; use a validation experiment seed (never a reported one).

    python bench/studies/memorisation.py --profile quick --dataset cifar10 --seed 100 --epochs 20 30
"""

from __future__ import annotations

import argparse

import pandas as pd

from nmu.experiment import Experiment
from nmu.profiles import get_profile
from nmu.train import accuracy


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--seed", type=int, default=100, help="experiment seed (a validation one: not 0, 1, 2)")
    ap.add_argument("--fraction", type=float, default=0.1, help="size of the random forget set")
    ap.add_argument("--epochs", type=int, nargs="+", default=[20, 30])
    ap.add_argument("--root", default=None, help="data root (default: $NMU_DATA or ./data)")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    recipe = profile.recipe_for(args.dataset or profile.dataset)
    rows = []
    for epochs in args.epochs:
        exp = Experiment(profile, args.dataset, seed=args.seed, root=args.root, progress=False,
                         recipe=recipe.with_(epochs=epochs))
        split = exp.split("random", fraction=args.fraction)
        original, retrain = exp.original(), exp.retrain(split)
        data, (forget_x, forget_y) = exp.data, split.forget_set(exp.data)
        rows.append({"epochs": epochs, "train_s": original.seconds + retrain.seconds,
                     "train_acc": accuracy(original.model, data.train_images, data.train_labels),
                     "test_acc": accuracy(original.model, data.test_images, data.test_labels),
                     "forget_acc_original": accuracy(original.model, forget_x, forget_y),
                     "forget_acc_retrain": accuracy(retrain.model, forget_x, forget_y)})
    table = pd.DataFrame(rows)
    table["gap"] = table["forget_acc_original"] - table["forget_acc_retrain"]
    print(f"{args.profile} / {exp.data.name} / {exp.arch}, experiment seed {args.seed}, random "
          f"{args.fraction:.0%} forget set (train_s: original + retrain, as cached)")
    print(table.round(2).to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
