"""Evaluation of an unlearned model: accuracies, three named membership-inference attacks, KL to
the retrained model and the paper's Avg. Gap (docs/method.md, "Metrics").

    record = evaluate(model, exp.data, split, retrained=exp.retrain(split).model)
    gold = evaluate(exp.retrain(split).model, exp.data, split)
    avg_gap(record, gold, split.kind)

Every model runs once per image set; the attacks work on those :class:`Outputs` (logits + labels).
Record keys (accuracies and the two %-valued attacks in percent):

===========================  =================================================================
``acc_test``                 accuracy on D_t (the test set)
``acc_retain``               accuracy on D_r (remaining training samples)
``acc_forget``               accuracy on D_f (forgotten training samples)
``acc_test_retain``          class-wise splits only: test images of the remaining (fine) classes, D_rt
``acc_test_forget``          class-wise splits only: test images of the forgotten (fine) class, D_ft
``mia_entropy``              the paper's MIA: % of D_f an entropy attack calls "member"
``mia_svc_forget_efficacy``  SalUn's MIA-efficacy: % of D_f a confidence SVC calls "non-member"
                             (the SVC fitted on a balanced sample, :data:`SVC_FIT_PER_SIDE` a side)
``mia_loss_attack_acc``      NeurIPS 2023 challenge kit: CV accuracy telling D_f from D_t by loss
                             (a fraction; 0.5 = indistinguishable)
``kl_forget``, ``kl_test``   with ``retrained=``: mean KL(p_retrain || p_model) on D_f and D_t
===========================  =================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC
from torch import nn

from nmu.data import Dataset
from nmu.splits import CLASS_WISE, SAMPLE_WISE, Split
from nmu.train import predict

GAP_COLUMNS: dict[str, tuple[str, ...]] = {
    **{k: ("acc_test", "acc_retain", "acc_forget", "mia_entropy") for k in SAMPLE_WISE},
    **{k: ("acc_test_retain", "acc_test_forget", "acc_retain", "acc_forget", "mia_entropy") for k in CLASS_WISE},
}
"""The columns the paper's Avg. Gap averages over, by split kind."""
REFERENCES = ("retrain", "original")
"""The reference rows of every table of runs (not methods): the gold standard and no unlearning at all."""
METRIC_ORDER = ("acc_test", "acc_retain", "acc_forget", "acc_test_retain", "acc_test_forget", "mia_entropy",
                "mia_svc_forget_efficacy", "mia_loss_attack_acc", "kl_forget", "kl_test")


@dataclass(frozen=True, eq=False)
class Outputs:
    """Logits (N, K) of one model on one image set, with the N true labels."""

    logits: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.logits.dim() != 2 or self.labels.dim() != 1 or len(self.logits) != len(self.labels):
            raise ValueError(f"need logits (N, K) and N labels, got {tuple(self.logits.shape)} "
                             f"and {tuple(self.labels.shape)}")
        object.__setattr__(self, "logits", self.logits.detach().cpu())
        object.__setattr__(self, "labels", self.labels.detach().cpu().long())

    @classmethod
    def of(cls, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
           device: torch.device | str | None = None) -> "Outputs":
        """Run ``model`` (eval mode) on uint8 ``images`` once."""
        if len(images) != len(labels):
            raise ValueError(f"need as many labels as images: {len(images)} vs {len(labels)}")
        return cls(predict(model, images, device=device), labels)

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def log_probs(self) -> torch.Tensor:
        """log softmax in float64."""
        return F.log_softmax(self.logits.double(), dim=1)

    def entropy(self) -> np.ndarray:
        """Shannon entropy (nats) of each softmax."""
        return -(self.log_probs.exp() * self.log_probs).sum(1).numpy()

    def confidence(self) -> np.ndarray:
        """Softmax probability of the true label."""
        return self.log_probs.gather(1, self.labels[:, None]).squeeze(1).exp().numpy()

    def loss(self) -> np.ndarray:
        """Per-sample cross-entropy loss."""
        return -self.log_probs.gather(1, self.labels[:, None]).squeeze(1).numpy()

    def accuracy(self, mask: torch.Tensor | None = None) -> float:
        """Top-1 accuracy in percent (over ``mask``'s rows if given; NaN for no rows)."""
        correct = self.logits.argmax(1) == self.labels
        correct = correct[mask] if mask is not None else correct
        return correct.double().mean().item() * 100 if len(correct) else float("nan")


def per_class_accuracy(out: Outputs, num_classes: int) -> np.ndarray:
    """Accuracy (%) on the samples of each true class (NaN for a class without samples)."""
    correct = (out.logits.argmax(1) == out.labels).double()
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, out.labels, correct)
    counts = torch.bincount(out.labels, minlength=num_classes).double()
    return (hits / counts * 100).numpy()


def prediction_shares(out: Outputs, reference: torch.Tensor) -> dict[str, float]:
    """Where predictions go (% of samples): the true class, the ``reference`` class (e.g. the
    original model's most probable wrong class), or another class."""
    pred = out.logits.argmax(1)
    true = pred == out.labels
    ref = ~true & (pred == reference.cpu())
    return {"true class": true.double().mean().item() * 100, "original's top wrong class": ref.double().mean().item() * 100,
            "other wrong class": (~true & ~ref).double().mean().item() * 100}


def _nonempty(**sets: Outputs) -> None:
    for name, out in sets.items():
        if len(out) == 0:
            raise ValueError(f"the {name} set is empty")


def _balanced_subsample(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                        at_most: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As many random elements of ``a`` as of ``b``: the smaller one's size, or ``at_most``."""
    n = min(len(a), len(b), at_most or len(a))
    return rng.permutation(a)[:n], rng.permutation(b)[:n]


def entropy_mia(retain: Outputs, test: Outputs, forget: Outputs) -> float:
    """The paper's MIA: % of D_f predicted "member".

    Feature: softmax entropy. Attack: logistic regression with ``class_weight="balanced"`` fitted on
    all of D_r (member) vs all of D_t (non-member); deterministic, no subsampling.
    """
    _nonempty(retain=retain, test=test, forget=forget)
    x = np.concatenate([retain.entropy(), test.entropy()])[:, None]
    y = np.concatenate([np.ones(len(retain)), np.zeros(len(test))])
    attack = LogisticRegression(class_weight="balanced").fit(x, y)
    return float(attack.predict(forget.entropy()[:, None]).mean() * 100)


SVC_FIT_PER_SIDE = 2000
"""Members and non-members the SVC attack is fitted on (each): an RBF SVC's cost grows with the square
of its training set, so it is fitted on a balanced sample (``per_side=None``: on everything).
``bench/studies/svc_sample.py`` measures what the sample costs against the full fit (results/README.md).
A secondary metric: neither the Avg. Gap nor the claims use it."""


def svc_forget_efficacy(retain: Outputs, test: Outputs, forget: Outputs, *, seed: int = 0,
                        per_side: int | None = SVC_FIT_PER_SIDE) -> float:
    """SalUn's "MIA-efficacy": % of D_f predicted NON-member (higher = more forgotten).

    Feature: softmax probability of the true label. Attack: ``SVC(C=3, gamma="auto")`` (RBF) fitted
    on D_r (member) vs D_t (non-member), a balanced random sample (``seed``) of
    ``min(|D_r|, |D_t|, per_side)`` of each (``per_side=None``: as many as the smaller set has; SalUn
    itself fits on a subsample too).
    """
    _nonempty(retain=retain, test=test, forget=forget)
    if per_side is not None and per_side < 1:
        raise ValueError(f"per_side must be a positive number of samples or None, got {per_side}")
    members, non_members = _balanced_subsample(retain.confidence(), test.confidence(), np.random.default_rng(seed),
                                               per_side)
    x = np.concatenate([members, non_members])[:, None]
    y = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return float((attack.predict(forget.confidence()[:, None]) == 0).mean() * 100)


def loss_attack_accuracy(forget: Outputs, test: Outputs, *, seed: int = 0) -> float:
    """NeurIPS 2023 unlearning challenge kit's attack: mean cross-validated accuracy (a fraction)
    of telling D_f (label 1) from D_t (label 0) by per-sample loss; 0.5 = indistinguishable.

    The larger set is randomly subsampled (``seed``) to the smaller one's size; logistic regression,
    stratified shuffled ``min(10, n)``-fold CV. Needs at least 2 samples in each set.
    """
    rng = np.random.default_rng(seed)
    f_loss, t_loss = _balanced_subsample(forget.loss(), test.loss(), rng)
    if len(f_loss) < 2:
        raise ValueError(f"the loss attack needs at least 2 forget and 2 test samples, "
                         f"got {len(forget)} and {len(test)}")
    x = np.concatenate([f_loss, t_loss])[:, None]
    y = np.concatenate([np.ones(len(f_loss)), np.zeros(len(t_loss))])
    cv = StratifiedKFold(n_splits=min(10, len(f_loss)), shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy").mean())


def kl_from_logits(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Mean over rows of KL(softmax(p) || softmax(q)), in float64 from log-softmax."""
    if p_logits.shape != q_logits.shape or p_logits.dim() != 2 or len(p_logits) == 0:
        raise ValueError(f"need two non-empty logit tensors (N, K) of one shape, got "
                         f"{tuple(p_logits.shape)} and {tuple(q_logits.shape)}")
    log_p = F.log_softmax(p_logits.detach().cpu().double(), dim=1)
    log_q = F.log_softmax(q_logits.detach().cpu().double(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean().item()


def kl_avg(p_model: nn.Module, q_model: nn.Module, images: torch.Tensor,
           device: torch.device | str | None = None) -> float:
    """KL_avg: mean over ``images`` of KL(p_retrain(x) || p_unlearned(x)); ``p_model`` is the retrained
    (reference) model, ``q_model`` the unlearned one."""
    return kl_from_logits(predict(p_model, images, device=device), predict(q_model, images, device=device))


def _forgotten_class(split: Split, labels: torch.Tensor | None, what: str) -> int:
    if labels is None:
        raise ValueError(f"a {split.kind} split needs a dataset with {what} (e.g. cifar20, digits-coarse)")
    found = torch.unique(labels[torch.from_numpy(split.forget)]).tolist()
    if len(found) != 1:
        raise ValueError(f"the forget set of a {split.kind} split must hold one {what[:-1]}, found {found}")
    return int(found[0])


@dataclass(frozen=True, eq=False)
class ReferenceLogits:
    """The retrained model's logits on D_f and D_t of one split: all the KL metrics need of it, so
    that a table of runs against one retrained model runs that model once."""

    forget: torch.Tensor
    test: torch.Tensor

    @classmethod
    def of(cls, retrained: nn.Module, data: Dataset, split: Split,
           device: torch.device | str | None = None) -> "ReferenceLogits":
        forget_images, _ = split.forget_set(data)
        return cls(predict(retrained, forget_images, device=device), predict(retrained, data.test_images, device=device))


def evaluate(model: nn.Module, data: Dataset, split: Split, *,
             retrained: nn.Module | ReferenceLogits | None = None,
             device: torch.device | str | None = None, seed: int = 0) -> dict[str, float]:
    """One flat record of ``model`` on ``split`` of ``data`` (keys: see the module docstring).

    ``retrained`` (the gold-standard model of the same split, or its :class:`ReferenceLogits`) adds
    ``kl_forget`` and ``kl_test``; ``seed`` fixes the attacks' subsampling and cross-validation folds.
    """
    split.validate(len(data.train_labels))
    forget = Outputs.of(model, *split.forget_set(data), device)
    retain = Outputs.of(model, *split.retain_set(data), device)
    test = Outputs.of(model, data.test_images, data.test_labels, device)
    record = {"acc_test": test.accuracy(), "acc_retain": retain.accuracy(), "acc_forget": forget.accuracy()}
    if split.kind in CLASS_WISE:
        if split.kind == "class":
            in_forgotten = data.test_labels == _forgotten_class(split, data.train_labels, "labels")
        else:
            in_forgotten = data.test_fine == _forgotten_class(split, data.train_fine, "fine labels")
        record["acc_test_retain"] = test.accuracy(~in_forgotten)
        record["acc_test_forget"] = test.accuracy(in_forgotten)
    record["mia_entropy"] = entropy_mia(retain, test, forget)
    record["mia_svc_forget_efficacy"] = svc_forget_efficacy(retain, test, forget, seed=seed)
    record["mia_loss_attack_acc"] = loss_attack_accuracy(forget, test, seed=seed)
    if retrained is not None:
        if not isinstance(retrained, ReferenceLogits):
            retrained = ReferenceLogits.of(retrained, data, split, device)
        record["kl_forget"] = kl_from_logits(retrained.forget, forget.logits)
        record["kl_test"] = kl_from_logits(retrained.test, test.logits)
    return record


def avg_gap(record: dict[str, float], retrain_record: dict[str, float], kind: str) -> float:
    """The paper's Avg. Gap: mean |metric - retrain metric| over the columns of ``kind``
    (:data:`GAP_COLUMNS`: sample-wise Acc D_t, D_r, D_f, MIA; class-wise Acc D_rt, D_ft, D_r, D_f, MIA)."""
    if kind not in GAP_COLUMNS:
        raise ValueError(f"unknown split kind {kind!r}; use one of {sorted(GAP_COLUMNS)}")
    columns = GAP_COLUMNS[kind]
    for name, rec in (("record", record), ("retrain record", retrain_record)):
        missing = [c for c in columns if c not in rec]
        if missing:
            raise ValueError(f"the {name} lacks {missing}, needed for the Avg. Gap of a {kind} split")
    return float(np.mean([abs(record[c] - retrain_record[c]) for c in columns]))


def forgetting_achieved(record: dict[str, float], original: dict[str, float], retrain: dict[str, float]) -> float:
    """How far a run took D_f accuracy from the original's towards the retrained model's:
    (original - run) / (original - retrain). 1 = as far as retraining, 0 = nothing forgotten, above 1 =
    past retraining (D_f over-forgotten); NaN when the original and the retrained model agree."""
    span = original["acc_forget"] - retrain["acc_forget"]
    return float((original["acc_forget"] - record["acc_forget"]) / span) if span else float("nan")


def records_to_frame(records: list[dict]) -> pd.DataFrame:
    """A DataFrame of records: other keys (method, seed, ...) first as first seen, then the metrics in
    :data:`METRIC_ORDER`."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    columns = [k for k in keys if k not in METRIC_ORDER] + [k for k in METRIC_ORDER if k in keys]
    return pd.DataFrame.from_records(records, columns=columns)
