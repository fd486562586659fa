"""bench/paper_ledger.py: the paper-scale tables from GPU ledger runs (synthetic folders here)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pandas as pd
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def ledger_module():
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("paper_ledger", REPO / "bench" / "paper_ledger.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root, seed, gaps, epochs=100, failed=()):
    """A ledger folder as bench/paper_check.py writes it: retrain, original, then methods with ``gaps``."""
    folder = root / f"cifar10-random10-seed{seed}"
    folder.mkdir(parents=True)
    (folder / "environment.json").write_text(json.dumps({
        "config": {"profile": "paper", "dataset": "cifar10", "fraction": 0.1, "seed": seed},
        "device": "GPU", "gpu_name": "NVIDIA H200", "git_commit": "abc"}))
    pd.DataFrame({"model": ["original", "retrain"], "epochs": [epochs] * 2, "recipe_epochs": [100] * 2}).to_csv(
        folder / "models.csv", index=False)
    rows = [{"method": "retrain", "avg_gap": 0.0, "acc_test": 90.0 + seed, "rte_vs_retrain": 1.0},
            {"method": "original", "avg_gap": 6.0, "acc_test": 90.5 + seed, "rte_vs_retrain": 0.0}]
    for method, gap in gaps.items():
        rows.append({"method": method, "avg_gap": gap, "acc_test": 89.0, "rte_vs_retrain": 0.1}
                    if method not in failed else {"method": method, "failed": "NonFiniteLossError: diverged"})
    table = pd.DataFrame(rows).assign(acc_retain=99.9, acc_forget=90.0, mia_entropy=77.0, seconds=1.0)
    table.to_csv(folder / "unlearning.csv", index=False)


def test_seeds_are_averaged_with_intervals_and_paired(ledger_module, tmp_path):
    ledger = tmp_path / "ledger"
    write_run(ledger, 0, {"natmu": 1.0, "rl": 20.0, "ft": 1.5})
    write_run(ledger, 1, {"natmu": 2.0, "rl": 30.0, "ft": 1.0})
    write_run(ledger, 2, {"natmu": 3.0, "rl": 25.0, "ft": 2.0}, failed=("rl",))
    write_run(ledger, 3, {"natmu": 9.0, "rl": 9.0, "ft": 9.0}, epochs=22)  # shortened: shown apart only
    ledger_module.main(["--ledger", str(ledger)])
    table = pd.read_csv(tmp_path / "cifar10.csv").set_index("method")
    assert table.loc["natmu", "avg_gap"] == pytest.approx(2.0) and table.loc["natmu", "n"] == 3
    assert table.loc["natmu", "avg_gap_ci"] == pytest.approx(4.303 * 1 / 3 ** 0.5, rel=1e-3)
    assert table.loc["rl", "avg_gap"] == pytest.approx(25.0) and table.loc["rl", "n"] == 2
    assert table.loc["rl", "failed"] == 1 and table.loc["natmu", "failed"] == 0
    assert table.loc["retrain", "acc_test"] == pytest.approx(91.0)  # seeds 0-2: the shortened run is not in it
    assert set(table.epochs) == {100}
    page = (tmp_path / "cifar10.md").read_text()
    assert "## random 10 %, 100 epochs (3 seeds: 0, 1, 2; NVIDIA H200)" in page
    assert "2.00 ± 2.48" in page  # natmu's Avg. Gap with its interval
    # paired by seed: natmu - ft = -0.5, +1.0, +1.0; natmu - rl only where rl did not fail (seeds 0, 1)
    assert "| ft      |           2.00 |          1.50 |   0.50 |" in page
    assert "| rl      |           1.50 |         25.00 | -23.50 |" in page
    assert "### `cifar10-random10-seed3`: 22 of 100 epochs" in page
    assert "| nmu - reference | -2.12 |" in page


def test_an_empty_ledger_is_an_error(ledger_module, tmp_path):
    with pytest.raises(SystemExit, match="no ledger runs"):
        ledger_module.main(["--ledger", str(tmp_path)])
