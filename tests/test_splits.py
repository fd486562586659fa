"""Forget splits: construction, validation and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmu.splits import Split, class_split, hardest_split, random_split, subclass_split

LABELS = torch.arange(10).repeat_interleave(100)  # 10 classes x 100 samples


def test_random_split_is_class_balanced_and_seeded():
    s = random_split(LABELS, 0.1, seed=3)
    assert np.bincount(LABELS.numpy()[s.forget]).tolist() == [10] * 10
    assert s.forget.size + s.retain.size == 1000 and np.intersect1d(s.forget, s.retain).size == 0
    assert np.array_equal(s.forget, random_split(LABELS, 0.1, seed=3).forget)
    assert not np.array_equal(s.forget, random_split(LABELS, 0.1, seed=4).forget)
    assert s.checksum != random_split(LABELS, 0.1, seed=4).checksum


def test_hardest_split_takes_the_highest_scores():
    scores = torch.zeros(1000)
    scores[[5, 500, 999]] = torch.tensor([3.0, 2.0, 1.0])
    s = hardest_split(scores, 0.003)
    assert s.forget.tolist() == [5, 500, 999] and s.kind == "hardest"
    with pytest.raises(ValueError, match="NaN"):
        hardest_split(torch.tensor([1.0, float("nan")]), 0.5)


def test_class_and_subclass_splits():
    classes = [f"c{i}" for i in range(10)]
    by_name, by_index = class_split(LABELS, "c3", classes), class_split(LABELS, 3, classes)
    assert np.array_equal(by_name.forget, by_index.forget) and set(LABELS.numpy()[by_name.forget]) == {3}
    assert by_name.forget.size == 100
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        class_split(LABELS, "cat", classes)
    with pytest.raises(ValueError, match="out of range"):
        class_split(LABELS, 10, classes)
    sub = subclass_split(LABELS, "c7", classes)
    assert sub.kind == "subclass" and set(LABELS.numpy()[sub.forget]) == {7}
    with pytest.raises(ValueError, match="fine labels"):
        subclass_split(None, "c7", None)


@pytest.mark.parametrize("forget, retain, message", [
    ([0, 1], [2, 10], "out of range"),
    ([-1], [2], "out of range"),
    ([0, 0], [2], "repeat"),
    ([], [1, 2], "empty"),
    ([0, 1], [1, 2], "both forget and retain"),
])
def test_bad_indices_are_rejected(forget, retain, message):
    with pytest.raises(ValueError, match=message):
        Split("custom", np.array(forget, dtype=np.int64), np.array(retain, dtype=np.int64)).validate(10)


def test_save_load_roundtrip_and_tampering(tmp_path):
    s = random_split(LABELS, 0.05, seed=0)
    s.save(tmp_path / "split")
    loaded = Split.load(tmp_path / "split")
    assert loaded.checksum == s.checksum and np.array_equal(loaded.retain, s.retain)
    np.save(tmp_path / "split" / "forget.npy", s.forget[:-1])
    with pytest.raises(ValueError, match="checksum"):
        Split.load(tmp_path / "split")


def test_user_supplied_index_files(tmp_path):
    np.save(tmp_path / "f.npy", np.array([3, 1, 2]))
    s = Split.from_files(tmp_path / "f.npy", n=10)
    assert s.forget.tolist() == [1, 2, 3] and s.retain.tolist() == [0, 4, 5, 6, 7, 8, 9]
    (tmp_path / "f.txt").write_text("4\n5\n")
    (tmp_path / "r.txt").write_text("0 1 2\n")
    s = Split.from_files(tmp_path / "f.txt", n=10, retain=tmp_path / "r.txt")
    assert s.forget.tolist() == [4, 5] and s.retain.tolist() == [0, 1, 2]
    (tmp_path / "bad.txt").write_text("1.5\n")
    with pytest.raises(ValueError, match="non-integer"):
        Split.from_files(tmp_path / "bad.txt", n=10)
    np.save(tmp_path / "dup.npy", np.array([1, 1]))
    with pytest.raises(ValueError, match="repeat"):
        Split.from_files(tmp_path / "dup.npy", n=10)
    with pytest.raises(FileNotFoundError):
        Split.from_files(tmp_path / "missing.npy", n=10)


def test_badly_typed_fraction_and_class_are_errors_not_truncated():
    labels = np.repeat(np.arange(4), 10)
    with pytest.raises(TypeError, match="fraction must be a number"):
        random_split(labels, "0.1", seed=0)
    with pytest.raises(TypeError, match="a class is a name or an integer index, got 3.7"):
        class_split(labels, 3.7, ["a", "b", "c", "d"])
    assert class_split(labels, np.int64(3), ["a", "b", "c", "d"]).forget.tolist() == list(range(30, 40))


def test_an_empty_forget_set_names_the_smallest_fraction_that_forgets_a_sample():
    """sample_wise's 1 % of a small image-folder tree rounds to nothing: the error says which fraction
    does, by the rounding the splits use (round(fraction * class size), round(fraction * n) for hardest)."""
    import re

    labels = np.repeat(np.arange(3), [16, 10, 4])  # 30 images, classes of 16, 10 and 4
    with pytest.raises(ValueError, match="the forget set is empty") as err:
        random_split(labels, 0.01, seed=0)
    message = str(err.value)
    smallest = float(re.search(r"fraction >= ([0-9.e-]+), the smallest that forgets a sample", message)[1])
    every = float(re.search(r"fraction >= ([0-9.e-]+) for one of every class \(the smallest has 4\)", message)[1])
    assert (smallest, every) == (0.0313, 0.126)  # just above 0.5 / 16 and 0.5 / 4, in three digits
    assert len(random_split(labels, smallest, seed=0).forget) == 1  # one of the largest class
    assert set(labels[random_split(labels, every, seed=0).forget]) == {0, 1, 2}
    with pytest.raises(ValueError, match="fraction >= 0.0313"):
        random_split(labels, 0.0312, seed=0)  # the next smaller three-digit fraction forgets nothing

    with pytest.raises(ValueError, match=r"the forget set is empty: the hardest 0.01 of 30 .* fraction >= 0.0167,"):
        hardest_split(np.arange(30.0), 0.01)
    assert len(hardest_split(np.arange(30.0), 0.0167).forget) == 1
    with pytest.raises(ValueError, match="fraction >= 0.0167"):
        hardest_split(np.arange(30.0), 0.0166)


def test_an_experiments_empty_forget_set_is_sized_from_its_own_data():
    """The suggestion comes from the data the experiment trains on (the smoke profile's digits)."""
    from nmu.experiment import Experiment
    from nmu.splits import smallest_fraction

    exp = Experiment("smoke")
    sizes = np.bincount(exp.data.train_labels.numpy())
    with pytest.raises(ValueError, match=rf"largest class has {sizes.max()} training samples\). Use fraction >= "
                                         rf"{smallest_fraction(int(sizes.max())):g},"):
        exp.split("random", fraction=0.001)
    assert len(exp.split("random", fraction=smallest_fraction(int(sizes.max()))).forget) >= 1
