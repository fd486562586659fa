"""Where a results folder's time went, read from what its notebooks wrote (no computation).

Each notebook's ``manifest.json`` has its wall time; a comparison notebook's ``runs.csv`` has the
seconds of every retraining (method ``retrain``) and unlearning run it computed. So each notebook's
wall time splits into retraining, unlearning (per method) and the rest (original models, which
``runs.csv`` lists with 0 s, evaluation, loading, figures). For a cold run (empty data root) that is
the cost profile of ``make figures``; for a warm one the run seconds are those cached by the cold run.

    python bench/cold_cost.py results/quick --target-min 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

SKIP = ("search",)
"""Folders not written by ``make figures`` (``make search`` writes ``search/``)."""


def breakdown(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(notebooks, methods)``: per notebook its wall, retraining, unlearning and remaining seconds
    and model/run counts; per unlearning method its runs and seconds over all notebooks."""
    rows, runs = [], []
    for manifest in sorted(Path(results).glob("*/manifest.json")):
        name = manifest.parent.name
        if name in SKIP:
            continue
        wall = float(json.loads(manifest.read_text())["wall_seconds"])
        table = manifest.with_name("runs.csv")
        part = pd.read_csv(table, usecols=["method", "seconds"]) if table.exists() else \
            pd.DataFrame({"method": pd.Series(dtype=str), "seconds": pd.Series(dtype=float)})
        retrain = part[part["method"] == "retrain"]
        unlearning = part[~part["method"].isin(["retrain", "original"])]
        rows.append({"notebook": name, "wall_s": wall, "retrains": len(retrain),
                     "retrain_s": retrain["seconds"].sum(), "runs": len(unlearning),
                     "unlearning_s": unlearning["seconds"].sum(),
                     "rest_s": wall - retrain["seconds"].sum() - unlearning["seconds"].sum()})
        runs.append(unlearning.assign(notebook=name))
    if not rows:
        raise FileNotFoundError(f"no <notebook>/manifest.json under {results}: run `make figures` first")
    methods = pd.concat(runs).groupby("method")["seconds"].agg(runs="size", total_s="sum", mean_s="mean")
    return pd.DataFrame(rows), methods.sort_values("total_s", ascending=False).reset_index()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, nargs="?", default=Path("results/quick"))
    ap.add_argument("--target-min", type=float, default=200.0, help="the cost target to compare with")
    args = ap.parse_args(argv)
    notebooks, methods = breakdown(args.results)
    total = notebooks[["wall_s", "retrain_s", "unlearning_s", "rest_s"]].sum()
    notebooks.loc[len(notebooks)] = {"notebook": "all", **total.to_dict(), "retrains": notebooks["retrains"].sum(),
                                     "runs": notebooks["runs"].sum()}
    print(notebooks.round(0).to_markdown(index=False), end="\n\n")
    print(methods.round(1).to_markdown(index=False), end="\n\n")

    def share(column: str) -> str:
        return f"{total[column] / 60:.0f} min ({total[column] / total['wall_s'] * 100:.0f} %)"

    print(f"Notebooks: {total['wall_s'] / 60:.0f} min; retraining {share('retrain_s')}, unlearning runs "
          f"{share('unlearning_s')}, the rest (originals, evaluation, loading, figures) {share('rest_s')}.")
    floor = (total["retrain_s"] + total["unlearning_s"]) / 60
    print(f"Retraining + unlearning alone: {floor:.0f} min, "
          + (f"above the {args.target_min:.0f}-min target before any original is trained or any model evaluated."
             if floor > args.target_min else f"within the {args.target_min:.0f}-min target."))


if __name__ == "__main__":
    main()
