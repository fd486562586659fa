"""Metrics: hand-computed values on fixed-logit toys, attacks at chance and when separable, and
`evaluate` on the smoke experiment."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from nmu.data import Dataset
from nmu.metrics import (Outputs, ReferenceLogits, avg_gap, entropy_mia, evaluate, kl_avg, kl_from_logits,
                         loss_attack_accuracy, records_to_frame, svc_forget_efficacy)
from nmu.splits import Split, class_split, subclass_split
from nmu.train import accuracy

BASE_KEYS = ["acc_test", "acc_retain", "acc_forget", "mia_entropy", "mia_svc_forget_efficacy",
             "mia_loss_attack_acc"]
CLASS_KEYS = ["acc_test", "acc_retain", "acc_forget", "acc_test_retain", "acc_test_forget", "mia_entropy",
              "mia_svc_forget_efficacy", "mia_loss_attack_acc"]


class Lookup(nn.Module):
    """Maps an image to the logit row indexed by its first pixel value (0..255)."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]


def pixels(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1)


def outputs(logits, label: int = 0) -> Outputs:
    logits = torch.as_tensor(logits, dtype=torch.float32)
    return Outputs(logits, torch.full((len(logits),), label))


def repeat(row, n: int) -> list:
    return [row] * n


# ---------------------------------------------------------------------------------------------- KL

def test_kl_hand_computed_and_zero_with_itself():
    p = Lookup([[0.0, 0.0], [1.0, 2.0]])              # row 0: (1/2, 1/2)
    q = Lookup([[math.log(3.0), 0.0], [1.0, 2.0]])    # row 0: (3/4, 1/4); row 1 same as p
    x = pixels([0, 1])
    assert kl_avg(p, p, x) == 0.0
    # KL(p||q) row 0 = 1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4) = 1/2 ln(4/3); row 1 = 0
    assert kl_avg(p, q, x) == pytest.approx(0.25 * math.log(4 / 3), rel=1e-6)
    # the first argument is the reference: KL(q||p) row 0 = 3/4 ln(3/2) + 1/4 ln(1/2)
    assert kl_avg(q, p, x) == pytest.approx(0.5 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), rel=1e-6)


def test_kl_stable_for_extreme_logits_and_rejects_shape_mismatch():
    big = torch.tensor([[1000.0, -1000.0, 0.0]])
    assert kl_from_logits(big, big) == 0.0
    assert math.isfinite(kl_from_logits(big, torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="one shape"):
        kl_from_logits(torch.zeros(2, 3), torch.zeros(3, 3))


# ----------------------------------------------------------------------------------------- attacks

CONFIDENT, UNIFORM = [10.0, 0.0, 0.0], [0.0, 0.0, 0.0]   # entropy ~0 / ln 3; confidence ~1 / 1/3


def test_entropy_mia_separable_hand_value():
    members, non_members = outputs(repeat(CONFIDENT, 20)), outputs(repeat(UNIFORM, 20))
    assert entropy_mia(members, non_members, members) == 100.0
    assert entropy_mia(members, non_members, non_members) == 0.0
    assert entropy_mia(members, non_members, outputs(repeat(CONFIDENT, 3) + [UNIFORM])) == 75.0


def test_entropy_mia_at_chance_on_one_distribution():
    rng = np.random.default_rng(0)
    retain, test = (outputs(rng.normal(0, 2, (2000, 5))) for _ in range(2))
    # the attack calls members and non-members "member" equally often: balanced accuracy ~ 50 %
    assert abs(entropy_mia(retain, test, retain) - entropy_mia(retain, test, test)) < 8


def test_svc_forget_efficacy_separable_and_seeded():
    members, non_members = outputs(repeat(CONFIDENT, 50)), outputs(repeat(UNIFORM, 20))  # D_r subsampled
    assert svc_forget_efficacy(members, non_members, members) == 0.0
    assert svc_forget_efficacy(members, non_members, non_members) == 100.0
    mixed = outputs([CONFIDENT] + repeat(UNIFORM, 3))
    assert svc_forget_efficacy(members, non_members, mixed) == 75.0
    rng = np.random.default_rng(1)
    r, t, f = (outputs(rng.normal(0, 2, (n, 4))) for n in (300, 100, 50))
    assert svc_forget_efficacy(r, t, f, seed=3) == svc_forget_efficacy(r, t, f, seed=3)


def test_svc_is_fitted_on_at_most_per_side_of_each_set(monkeypatch):
    import nmu.metrics as metrics

    fitted = []
    real_svc = metrics.SVC
    monkeypatch.setattr(metrics, "SVC", lambda **kw: fitted.append(kw) or _Recording(real_svc(**kw), fitted))
    rng = np.random.default_rng(0)
    r, t, f = (outputs(rng.normal(0, 2, (n, 4))) for n in (300, 200, 50))
    svc_forget_efficacy(r, t, f, per_side=40)
    svc_forget_efficacy(r, t, f, per_side=None)
    assert fitted[1] == 80 and fitted[3] == 400  # 40 + 40; then the smaller set's size, 200, a side
    with pytest.raises(ValueError, match="per_side must be a positive"):
        svc_forget_efficacy(r, t, f, per_side=0)


class _Recording:
    """An SVC that records the size of the set it is fitted on."""

    def __init__(self, svc, log):
        self.svc, self.log = svc, log

    def fit(self, x, y):
        self.log.append(len(x))
        self.svc.fit(x, y)
        return self

    def predict(self, x):
        return self.svc.predict(x)


def test_loss_attack_at_chance_on_one_distribution_and_perfect_when_separable():
    rng = np.random.default_rng(0)
    forget, test = outputs(rng.normal(0, 2, (500, 5))), outputs(rng.normal(0, 2, (2000, 5)))
    assert 0.4 <= loss_attack_accuracy(forget, test) <= 0.6
    right, wrong = outputs(repeat(CONFIDENT, 40), label=0), outputs(repeat(CONFIDENT, 40), label=1)
    assert loss_attack_accuracy(right, wrong) == 1.0


def test_attacks_reject_bad_input():
    with pytest.raises(ValueError, match="N labels"):
        Outputs(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="as many labels"):
        Outputs.of(Lookup([[0.0, 1.0]]), pixels([0, 0]), torch.zeros(1, dtype=torch.long))
    some, empty = outputs(repeat(UNIFORM, 4)), outputs(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="forget set is empty"):
        entropy_mia(some, some, empty)
    with pytest.raises(ValueError, match="forget set is empty"):
        svc_forget_efficacy(some, some, empty)
    with pytest.raises(ValueError, match="at least 2"):
        loss_attack_accuracy(outputs([UNIFORM]), some)


# ------------------------------------------------------------------------------------------ Avg. Gap

def test_avg_gap_hand_values():
    gold = {"acc_test": 90.0, "acc_retain": 100.0, "acc_forget": 90.0, "mia_entropy": 80.0,
            "acc_test_retain": 91.0, "acc_test_forget": 0.0, "mia_svc_forget_efficacy": 5.0}
    rec = {"acc_test": 89.0, "acc_retain": 98.0, "acc_forget": 93.0, "mia_entropy": 84.0,
           "acc_test_retain": 86.0, "acc_test_forget": 10.0, "mia_svc_forget_efficacy": 50.0}
    for kind in ("random", "hardest", "custom", "class", "subclass"):
        assert avg_gap(rec, rec, kind) == 0.0
    assert avg_gap(rec, gold, "random") == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert avg_gap(rec, gold, "class") == pytest.approx((5 + 10 + 2 + 3 + 4) / 5)
    assert avg_gap(gold, rec, "subclass") == avg_gap(rec, gold, "class")


def test_avg_gap_errors():
    sample_wise = {"acc_test": 1.0, "acc_retain": 1.0, "acc_forget": 1.0, "mia_entropy": 1.0}
    with pytest.raises(ValueError, match="acc_test_retain"):
        avg_gap(sample_wise, sample_wise, "class")
    with pytest.raises(ValueError, match="retrain record lacks"):
        avg_gap(sample_wise, {"acc_test": 1.0}, "random")
    with pytest.raises(ValueError, match="unknown split kind"):
        avg_gap(sample_wise, sample_wise, "everything")


def test_records_to_frame_column_order():
    frame = records_to_frame([{"mia_entropy": 1.0, "method": "a", "acc_test": 2.0},
                              {"acc_test": 3.0, "method": "b", "seed": 0}])
    assert list(frame.columns) == ["method", "seed", "acc_test", "mia_entropy"]
    assert frame["acc_test"].tolist() == [2.0, 3.0]


# ------------------------------------------------------------------ evaluate on a hand-made dataset

# 8 images, pixel value = index; fine classes 0,0,1,1,2,2,3,3 -> coarse classes 0,0,0,0,1,1,1,1.
# The model predicts coarse classes 0,1,0,0,1,0,0,1: correct on indices 0,2,3,4,7.
PRED = [0, 1, 0, 0, 1, 0, 0, 1]
TOY_MODEL = Lookup([[2.0, 0.0] if p == 0 else [0.0, 2.0] for p in PRED])


def toy_data(fine: bool = True) -> Dataset:
    x, fine_labels = pixels(range(8)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    coarse = fine_labels // 2
    return Dataset("toy", x, coarse, x.clone(), coarse.clone(), classes=("a", "b"), mean=(0.5,), std=(0.5,),
                   train_fine=fine_labels if fine else None, test_fine=fine_labels.clone() if fine else None,
                   fine_classes=("a0", "a1", "b0", "b1") if fine else None)


def test_evaluate_class_split_hand_values():
    data = toy_data()
    rec = evaluate(TOY_MODEL, data, class_split(data.train_labels, "a", data.classes))
    assert list(rec) == CLASS_KEYS
    assert rec["acc_test"] == 62.5                       # 5 of 8
    assert rec["acc_forget"] == 75.0                     # indices 0-3: 3 of 4
    assert rec["acc_retain"] == 50.0                     # indices 4-7: 2 of 4
    assert rec["acc_test_forget"] == 75.0                # D_ft = test class "a"
    assert rec["acc_test_retain"] == 50.0                # D_rt = test class "b"


def test_evaluate_subclass_split_hand_values():
    data = toy_data()
    rec = evaluate(TOY_MODEL, data, subclass_split(data.train_fine, "a1", data.fine_classes))
    assert list(rec) == CLASS_KEYS
    assert rec["acc_forget"] == 100.0                    # indices 2, 3
    assert rec["acc_retain"] == 50.0                     # indices 0,1,4,5,6,7: 3 of 6
    assert rec["acc_test_forget"] == 100.0               # D_ft = fine class a1, scored on coarse labels
    assert rec["acc_test_retain"] == 50.0


def test_evaluate_sample_wise_has_no_class_keys_and_kl_with_retrained():
    data = toy_data()
    split = Split("custom", np.array([1, 2, 5]), np.array([0, 3, 4, 6, 7]))
    rec = evaluate(TOY_MODEL, data, split, retrained=TOY_MODEL)
    assert list(rec) == BASE_KEYS + ["kl_forget", "kl_test"]
    assert rec["acc_forget"] == pytest.approx(100 / 3) and rec["acc_retain"] == 80.0
    assert rec["kl_forget"] == 0.0 and rec["kl_test"] == 0.0
    # the retrained model's logits, computed once for a whole table of runs, give the same record
    assert evaluate(TOY_MODEL, data, split, retrained=ReferenceLogits.of(TOY_MODEL, data, split)) == rec


def test_evaluate_rejects_bad_splits():
    data = toy_data()
    with pytest.raises(ValueError, match="forget set is empty"):
        evaluate(TOY_MODEL, data, Split("custom", np.array([], dtype=np.int64), np.arange(8)))
    with pytest.raises(ValueError, match="one label"):
        evaluate(TOY_MODEL, data, Split("class", np.array([0, 4]), np.array([1, 2, 3, 5, 6, 7])))
    with pytest.raises(ValueError, match="fine labels"):
        evaluate(TOY_MODEL, toy_data(fine=False), Split("subclass", np.array([2, 3]), np.array([0, 1, 4, 5, 6, 7])))


# -------------------------------------------------------------------------- evaluate on smoke models

@pytest.fixture(scope="module")
def smoke_models(request):
    """conftest's smoke experiment (fetched here so it trains on one thread), a 10 % random split,
    and its original and retrained models."""
    exp = request.getfixturevalue("smoke")
    split = exp.split("random", fraction=0.1)
    return exp, split, exp.original().model, exp.retrain(split).model


def test_evaluate_smoke_random_split(smoke_models):
    exp, split, original, retrained = smoke_models
    d = exp.data
    rec = evaluate(original, d, split, retrained=retrained)
    assert list(rec) == BASE_KEYS + ["kl_forget", "kl_test"]
    for key in ("acc_test", "acc_retain", "acc_forget", "mia_entropy", "mia_svc_forget_efficacy"):
        assert 0.0 <= rec[key] <= 100.0
    assert 0.0 <= rec["mia_loss_attack_acc"] <= 1.0
    f, r = torch.from_numpy(split.forget), torch.from_numpy(split.retain)
    assert rec["acc_forget"] == pytest.approx(accuracy(original, d.train_images[f], d.train_labels[f]), abs=1e-4)
    assert rec["acc_retain"] == pytest.approx(accuracy(original, d.train_images[r], d.train_labels[r]), abs=1e-4)
    assert rec["acc_test"] == pytest.approx(accuracy(original, d.test_images, d.test_labels), abs=1e-4)
    assert rec["kl_forget"] > 0 and rec["kl_test"] > 0
    assert rec["kl_test"] == pytest.approx(kl_avg(retrained, original, d.test_images), rel=1e-9)

    untrained = evaluate(exp.new_model().eval(), d, split)
    assert rec["acc_forget"] > untrained["acc_forget"] + 30

    gold = evaluate(retrained, d, split, retrained=retrained)
    assert gold["kl_forget"] == 0.0 and gold["kl_test"] == 0.0
    assert avg_gap(gold, gold, "random") == 0.0 and avg_gap(untrained, gold, "random") > 10


def test_evaluate_smoke_class_split(smoke_models):
    exp, _, original, _ = smoke_models
    d = exp.data
    rec = evaluate(original, d, exp.split("class", cls=3))
    assert list(rec) == CLASS_KEYS
    is3 = d.test_labels == 3
    assert rec["acc_test_forget"] == pytest.approx(accuracy(original, d.test_images[is3], d.test_labels[is3]),
                                                   abs=1e-4)
    assert rec["acc_test_retain"] == pytest.approx(accuracy(original, d.test_images[~is3], d.test_labels[~is3]),
                                                   abs=1e-4)


def test_per_class_accuracy_and_prediction_shares():
    from nmu.metrics import per_class_accuracy, prediction_shares

    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0]])
    out = Outputs(logits, torch.tensor([0, 0, 1, 1]))  # predictions 0, 1, 0, 2
    acc = per_class_accuracy(out, 3)
    assert acc[0] == 50 and acc[1] == 0 and np.isnan(acc[2])
    shares = prediction_shares(out, reference=torch.tensor([1, 1, 0, 0]))
    assert shares == {"true class": 25.0, "original's top wrong class": 50.0, "other wrong class": 25.0}
