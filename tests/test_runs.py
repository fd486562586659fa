"""Presets and the cached, resumable runner."""

from __future__ import annotations

import pandas as pd

import pytest

from nmu.profiles import PROFILES, get_profile
from nmu.artefacts import cached_run, hyperparameters
from nmu.runs import check_methods, run_setting
from nmu.unlearn import METHODS, check_hparams


def test_every_preset_names_a_method_and_its_real_hyperparameters():
    for profile in PROFILES.values():
        assert profile.presets, f"{profile.name} has no presets"
        for setting, methods in profile.presets.items():
            for method, hp in methods.items():
                assert method in METHODS, f"{profile.name}/{setting}: unknown method {method}"
                check_hparams(method, hp)  # names and types against the method's signature


def test_lookup_order():
    paper, smoke = get_profile("paper"), get_profile("smoke")
    assert paper.hyperparameters("natmu", "cifar10", "random") == {"lr": 1e-3, "weight_decay": 2e-3, "delta": -0.19}
    assert paper.hyperparameters("natmu", "cifar10", "hardest")["delta"] == -0.19  # hardest uses random's
    assert paper.hyperparameters("natmu", "cifar100", "class")["head_reinit"] is True
    smoke_class = smoke.hyperparameters("natmu", "digits", "class", {"lr": 1.0})
    assert smoke_class["head_reinit"] is True and smoke_class["lr"] == 1.0 and smoke_class["epochs"] == 3
    assert paper.hyperparameters("ssd", "tinyimagenet", "random") == {"alpha": 5.0, "lam": 1.0}


def test_misspelt_methods_and_badly_typed_hyperparameters_are_errors(smoke):
    with pytest.raises(ValueError, match="unknown method"):
        hyperparameters(smoke, "natmoo", "random")
    split = smoke.split("random", fraction=0.1)
    for kwargs, match in [(dict(methods=["natmoo"]), "in methods"), (dict(methods="natmu"), "list of method names"),
                          (dict(methods=["natmu"], seeds={"natmoo": [0]}), "in seeds"),
                          (dict(methods=["natmu"], overrides={"rll": {"lr": 1.0}}), "in overrides"),
                          (dict(methods=["natmu"], seeds=0), "list of integers"),
                          (dict(methods=["natmu"], seeds=[0.5]), r"unlearning seed \(in seeds=\[0.5\]\) must be a whole"),
                          (dict(methods=["natmu"], seeds={"*": [-1]}), "unlearning seed .* got -1"),
                          (dict(methods=["natmu"], overrides={"natmu": {"lrr": 1.0}}), "does not take"),
                          (dict(methods=["natmu"], overrides={"natmu": {"lr": "abc"}}), "lr='abc' must be float"),
                          (dict(methods=["natmu"], overrides={"natmu": {"epochs": 2.5}}), "epochs=2.5 must be int")]:
        with pytest.raises((ValueError, TypeError), match=match):
            run_setting(smoke, split, **kwargs)
    assert check_methods(None) == list(METHODS) and "retrain" not in METHODS


@pytest.mark.parametrize("seeds", [{"seed": -1}, {"seed": "0"}, {"seed": 1.5}, {"seed": 2 ** 70}, {"seed": True},
                                   {"init_seed": -2}, {"split_seed": "1"}])
def test_bad_experiment_seeds_are_named_before_anything_is_loaded(seeds):
    from nmu.experiment import Experiment

    name, value = next(iter(seeds.items()))
    with pytest.raises(ValueError, match=rf"{name} must be a whole number from 0 to 2\*\*32 - 1, got {value!r}"):
        Experiment("smoke", dataset="no-such-dataset", **seeds)


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
    model, record = cached_run(smoke, split, "natmu", hyperparameters(smoke, "natmu", "class"), seed=0)
    assert record["acc_forget"] == natmu.iloc[0]["acc_forget"] and not model.training


def test_a_code_edit_recomputes_exactly_what_it_depends_on(smoke, monkeypatch):
    """Editing a baseline recomputes that method's runs (not NatMU's, not the trained models);
    editing the metrics recomputes only metric records; editing the trainer changes the models' keys."""
    import nmu.artefacts as artefacts
    import nmu.experiment

    split = smoke.split("random", fraction=0.1)
    first = run_setting(smoke, split, ["natmu", "ft"])
    real_digest, real_cached = artefacts.code_digest, artefacts.cached
    built = []

    def spy(name, fields, build, root=None):
        record, was_cached = real_cached(name, fields, build, root)
        if not was_cached:
            built.append(name)
        return record, was_cached

    monkeypatch.setattr(artefacts, "cached", spy)
    for edited, expected in [("nmu.baselines", ["unlearn-ft", "metrics-ft"]),
                             ("nmu.metrics", ["metrics-retrain", "metrics-original", "metrics-natmu", "metrics-ft"])]:
        built.clear()
        monkeypatch.setattr(artefacts, "code_digest", lambda *m, e=edited: real_digest(*m) + ("+edit" if e in m else ""))
        again = run_setting(smoke, split, ["natmu", "ft"])
        assert built == expected, edited
        assert again.drop(columns=["hparams", "seconds", "rte_vs_retrain"]).equals(
            first.drop(columns=["hparams", "seconds", "rte_vs_retrain"]))  # same code, same numbers
    before = smoke.checkpoint("original")
    monkeypatch.setattr(nmu.experiment, "code_digest", lambda *m: real_digest(*m) + "+edit")
    assert smoke.checkpoint("original") != before


def test_a_diverging_run_is_a_failed_row_and_the_grid_goes_on(smoke):
    split = smoke.split("random", fraction=0.1)
    with pytest.warns(UserWarning) as caught:
        table = run_setting(smoke, split, ["ft", "natmu", "scrub"], overrides={"ft": {"lr": 1e30},
                                                                               "scrub": {"lr": 1e30}})
    assert [str(w.message).split(" (")[0] for w in caught] == ["ft", "scrub"]
    assert "'lr': 1e+30" in str(caught[0].message) and "failed: ft: the training loss became" in str(caught[0].message)
    rows = table.set_index("method")
    assert rows.loc["ft", "failed"].startswith("ft: the training loss became") and pd.isna(rows.loc["ft", "acc_test"])
    assert "scrub: the training loss became" in rows.loc["scrub", "failed"] and pd.isna(rows.loc["scrub", "avg_gap"])
    assert pd.isna(rows.loc["natmu", "failed"]) and rows.loc["natmu", "avg_gap"] > 0  # the others ran


def test_the_retrain_trains_fresh_weights_not_the_original(tmp_path, monkeypatch):
    """The gold standard is a model trained from scratch on D_r (from the original's initial, untrained
    weights), not the original with a re-initialised layer: no parameter it starts from equals the
    original's trained weights."""
    import torch

    import nmu.experiment as experiment

    exp = experiment.Experiment("smoke", root=tmp_path)
    trained = {k: v.cpu() for k, v in exp.original().model.state_dict().items()}
    starts, real_fit = [], experiment.fit

    def spy(model, *args, **kwargs):
        starts.append({k: v.detach().clone().cpu() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(experiment, "fit", spy)
    exp.retrain(exp.split("random", fraction=0.1))
    [start] = starts
    params = [name for name, _ in exp.new_model().named_parameters()]
    assert [name for name in params if torch.equal(start[name], trained[name])] == []
    fresh = exp.new_model().state_dict()
    assert all(torch.equal(start[k], fresh[k].cpu()) for k in fresh)  # the original's own starting point
