"""The paper's tables at the paper's scale, rendered from every committed ledger run.

    make paper-ledger        # results/paper/ledger/*/ -> results/paper/<dataset>.md and .csv

Each folder ``results/paper/ledger/<dataset>-random<percent>-seed<k>/`` is one GPU lease's
``bench/paper_check.py --seed k`` output (``environment.json``, ``models.csv``, ``unlearning.csv``,
``log.txt``). Per dataset and setting this writes, over the experiment seeds: each method's mean and,
with two seeds or more, its 95 % Student-t interval (:mod:`nmu.stats`); NatMU minus each rival in
Avg. Gap, paired by seed; and the retrained model beside the reference code's retrain row. Runs whose
models trained fewer epochs than the recipe's are listed apart, never averaged with full ones. A
method that failed in a run is shown as failed there, and its mean is over the runs that did not fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_check import REFERENCE_RETRAIN  # noqa: E402

from nmu.stats import paired, summarize, with_ci  # noqa: E402
from nmu.storage import atomic_write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LEDGER = REPO / "results" / "paper" / "ledger"
METRICS = ["acc_test", "acc_retain", "acc_forget", "mia_entropy", "avg_gap", "seconds", "rte_pct"]
HEADERS = {"acc_test": "Acc D_t", "acc_retain": "Acc D_r", "acc_forget": "Acc D_f", "mia_entropy": "MIA (entropy)",
           "avg_gap": "Avg. Gap", "seconds": "run time (s)", "rte_pct": "run time (% of retrain's)"}
NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def markdown_table(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".2f")


def load_run(folder: Path) -> pd.DataFrame:
    """One ledger folder's unlearning table, with where it came from: dataset, setting, experiment seed,
    epochs trained and the recipe's, device, commit and whether any method failed (``failed``)."""
    env = json.loads((folder / "environment.json").read_text())
    models = pd.read_csv(folder / "models.csv")
    runs = pd.read_csv(folder / "unlearning.csv")
    cfg = env["config"]
    if "failed" not in runs:
        runs["failed"] = pd.NA
    return runs.assign(rte_pct=100 * runs.rte_vs_retrain, dataset=cfg["dataset"], setting=f"random {100 * cfg['fraction']:g} %",
                       exp_seed=int(cfg.get("seed", 0)), epochs=int(models.epochs.min()),
                       recipe_epochs=int(models.recipe_epochs.max()), device=env.get("gpu_name", env["device"]),
                       commit=env["git_commit"], run=folder.name)


def method_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method (in the runs' order): the mean of each of :data:`METRICS` over the seeds whose run
    did not fail, its 95 % CI half-width (``<metric>_ci``, NaN under two seeds), ``n`` such seeds and
    ``failed`` (how many runs failed)."""
    table = summarize(runs, METRICS).drop(columns=["dataset", "setting"], errors="ignore")
    return table.set_index("method").reindex(list(dict.fromkeys(runs.method))).reset_index()


def render(dataset: str, runs: pd.DataFrame, ledger: Path) -> tuple[str, pd.DataFrame]:
    """The Markdown page and the CSV table of ``dataset``'s ledger runs."""
    lines = [f"# {NAMES.get(dataset, dataset)} at the paper's scale", "",
             f"Rendered by `make paper-ledger` (`bench/paper_ledger.py`) from `{shown(ledger)}/`: "
             f"{', '.join(f'`{r}`' for r in sorted(set(runs.run)))}. Each run is one GPU lease of "
             "`bench/gpu/device_check.sh check --seed k` (results/paper/README.md); its folder holds the log and the "
             "manifest (`environment.json`: device, versions, commit, cuDNN mode, CUDA graphs). Means over "
             "experiment seeds (the original's weights and data order, the forget set, hence the retrained "
             "model), ± the 95 % Student-t interval where there are two seeds or more; Avg. Gap to the "
             "retrained model of the same seed.", ""]
    tables = []
    full = runs.epochs == runs.recipe_epochs
    for (setting, epochs), part in runs[full].groupby(["setting", "epochs"], sort=False):
        table = method_table(part)
        tables.append(table.assign(dataset=dataset, setting=setting, epochs=epochs))
        seeds = sorted(set(part.exp_seed))
        lines += [f"## {setting}, {epochs} epochs ({len(seeds)} seed{'s' * (len(seeds) > 1)}: "
                  f"{', '.join(map(str, seeds))}; {', '.join(sorted(set(part.device)))})", "",
                  markdown_table(with_ci(table, METRICS).rename(columns=HEADERS)), ""]
        pairs = paired(part, "natmu", "avg_gap")
        if len(pairs):
            pairs = pairs.assign(ci=[f"[{lo:+.2f}, {hi:+.2f}]" if n > 1 else "" for lo, hi, n
                                     in zip(pairs.ci_low, pairs.ci_high, pairs.n)])
            lines += ["NatMU minus each rival in Avg. Gap, paired by seed (negative: NatMU closer to retraining):",
                      "", markdown_table(pairs[["rival", "method_value", "rival_value", "diff", "ci", "n", "wins"]]
                                         .round(2)), ""]
        lines += reference_rows(dataset, setting, part)
    short = runs[~full]
    if len(short):
        lines += ["## Shortened runs (fewer epochs than the recipe's; not averaged with the runs above)", ""]
        for run, part in short.groupby("run", sort=False):
            lines += [f"### `{run}`: {part.epochs.iloc[0]} of {part.recipe_epochs.iloc[0]} epochs", "",
                      markdown_table(part[["method", *METRICS]].round(2).rename(columns=HEADERS)), ""]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return "\n".join(lines) + "\n", table


def reference_rows(dataset: str, setting: str, runs: pd.DataFrame) -> list[str]:
    """The retrained model (mean over seeds) beside the reference code's retrain row, where it has one."""
    reference = REFERENCE_RETRAIN.get(dataset)
    if reference is None or setting != "random 10 %":
        return []
    ours = runs[runs.method == "retrain"][list(reference)].mean()
    return [f"The retrained model against the reference code's retrain row ({dataset}, random 10 %):", "",
            "| | " + " | ".join(HEADERS[k] for k in reference) + " |", "|---" * (len(reference) + 1) + "|",
            "| reference code | " + " | ".join(f"{v:.2f}" for v in reference.values()) + " |",
            "| nmu (mean over seeds) | " + " | ".join(f"{ours[k]:.2f}" for k in reference) + " |",
            "| nmu - reference | " + " | ".join(f"{ours[k] - v:+.2f}" for k, v in reference.items()) + " |", "",
            "nmu's CIFAR images are a JPEG re-encode of the originals (the archives' README), and its MIA is "
            "Song & Mittal's entropy attack, not the reference code's variant (docs/method.md): neither row is "
            "expected to match the other exactly.", ""]


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ledger", type=Path, default=LEDGER, help="the folder of ledger runs")
    ap.add_argument("--out", type=Path, default=None, help="where the pages go (default: the ledger's parent)")
    args = ap.parse_args(argv)
    folders = sorted(p for p in args.ledger.glob("*") if (p / "unlearning.csv").is_file())
    if not folders:
        raise SystemExit(f"no ledger runs (folders with unlearning.csv) in {args.ledger}")
    runs = pd.concat([load_run(f) for f in folders], ignore_index=True)
    out, written = args.out or args.ledger.parent, []
    for dataset, part in runs.groupby("dataset", sort=False):
        text, table = render(dataset, part, args.ledger.resolve())
        atomic_write(out / f"{dataset}.md", lambda tmp, text=text: tmp.write_text(text))
        atomic_write(out / f"{dataset}.csv", lambda tmp, table=table: table.to_csv(tmp, index=False))
        written += [out / f"{dataset}.md", out / f"{dataset}.csv"]
    print("\n".join(map(str, written)))
    return written


if __name__ == "__main__":
    main()
