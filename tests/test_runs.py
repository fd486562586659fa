"""Presets and the cached, resumable runner."""

from __future__ import annotations

import inspect

import pytest

from nmu.runs import _presets, hyperparameters, run_setting, unlearned
from nmu.unlearn import METHODS


def test_every_preset_names_a_method_and_its_real_hyperparameters():
    for profile, table in _presets().items():
        for setting, methods in table.items():
            for method, hp in methods.items():
                assert method in METHODS, f"{profile}/{setting}: unknown method {method}"
                accepted = set(inspect.signature(METHODS[method]).parameters) - {"task"}
                assert set(hp) <= accepted, f"{profile}/{setting}/{method}: {set(hp) - accepted}"


def test_lookup_order():
    assert hyperparameters("natmu", "paper", "cifar10", "random") == {"lr": 1e-3, "weight_decay": 2e-3, "delta": -0.19}
    assert hyperparameters("natmu", "paper", "cifar10", "hardest")["delta"] == -0.19  # hardest uses random's
    assert hyperparameters("natmu", "paper", "cifar100", "class")["head_reinit"] is True
    smoke_class = hyperparameters("natmu", "smoke", "digits", "class", {"lr": 1.0})
    assert smoke_class["head_reinit"] is True and smoke_class["lr"] == 1.0 and smoke_class["epochs"] == 3
    assert hyperparameters("ssd", "paper", "tinyimagenet", "random") == {"alpha": 5.0, "lam": 1.0}
    with pytest.raises(ValueError, match="unknown method"):
        hyperparameters("natmoo", "paper", "cifar10", "random")


def test_run_setting_records_and_resumes(smoke):
    split = smoke.split("class", cls="3")
    table = run_setting(smoke, split, ["natmu", "rl"], seeds=(0, 1))
    assert table["method"].tolist() == ["retrain", "original", "natmu", "natmu", "rl", "rl"]
    gold, original = table.iloc[0], table.iloc[1]
    assert gold["avg_gap"] == 0 and gold["kl_forget"] == 0 and gold["rte_vs_retrain"] == 1
    assert original["seconds"] == 0 and original["acc_forget"] > 80  # the class is still known
    assert (table["avg_gap"].iloc[1:] > 0).all() and (table["seconds"].drop(index=1) > 0).all()
    assert {"acc_test_forget", "acc_test_retain", "mia_entropy", "kl_test"} <= set(table.columns)
    natmu = table[table["method"] == "natmu"]
    assert (natmu["acc_forget"] < 50).all() and natmu["hparams"].iloc[0]["head_reinit"] is True
    again = run_setting(smoke, split, ["natmu", "rl"], seeds=(0, 1))  # every run read from the cache
    assert again.drop(columns="hparams").equals(table.drop(columns="hparams"))
    model, record = unlearned(smoke, split, "natmu", seed=0)
    assert record["acc_forget"] == natmu.iloc[0]["acc_forget"] and not model.training


def test_summarize_averages_over_seeds():
    import pandas as pd

    from nmu.runs import summarize

    runs = pd.DataFrame({"setting": ["random"] * 3, "split": ["s"] * 3, "method": ["retrain", "natmu", "natmu"],
                         "seed": [0, 0, 1], "acc_forget": [80.0, 70.0, 74.0], "avg_gap": [0.0, 3.0, 5.0]})
    s = summarize(runs).set_index("method")
    assert s.loc["natmu", "acc_forget"] == 72.0 and s.loc["natmu", "avg_gap"] == 4.0
    assert s.loc["natmu", "avg_gap_std"] == pytest.approx(2 ** 0.5) and pd.isna(s.loc["retrain", "avg_gap_std"])
    assert list(s.columns) == ["setting", "split", "acc_forget", "acc_forget_std", "avg_gap", "avg_gap_std"]
