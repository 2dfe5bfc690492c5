import pytest
import torch

from mlsec_kit.data import DATASETS, load_dataset, make_loader


def test_digits_are_images_in_unit_range():
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8)
    assert d.X_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert float(d.X_train.min()) == 0.0 and float(d.X_train.max()) == 1.0
    assert len(d.X_train) + len(d.X_test) == 1797
    assert d.num_classes == 10


@pytest.mark.parametrize("name,n,features,k", [("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3)])
def test_tabular_standardised_on_train(name, n, features, k):
    d = load_dataset(name)
    assert d.input_shape == (features,) and d.num_classes == k
    assert len(d.X_train) + len(d.X_test) == n
    assert torch.allclose(d.X_train.mean(0), torch.zeros(features), atol=1e-5)
    assert torch.allclose(d.X_train.std(0, unbiased=False), torch.ones(features), atol=1e-4)
    # the test set is scaled with the training statistics, so its mean is not exactly zero
    assert d.X_test.mean(0).abs().max() > 1e-3
    assert len(d.feature_names) == features


def test_split_is_stratified_and_seeded():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(a.X_train, b.X_train) and not torch.equal(a.X_train, c.X_train)
    train_frac = torch.bincount(a.y_train) / len(a.y_train)
    test_frac = torch.bincount(a.y_test) / len(a.y_test)
    assert (train_frac - test_frac).abs().max() < 0.01


def test_test_size():
    d = load_dataset("wine", test_size=0.5)
    assert abs(len(d.X_test) - 89) <= 1


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, "0.2"])
def test_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        load_dataset("digits", test_size=bad)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*digits"):
        load_dataset("imagenet")
    with pytest.raises(TypeError):
        load_dataset(3)
    assert "mnist" in DATASETS


def test_loader_shuffle_is_seeded_and_covers_all():
    d = load_dataset("wine")
    order = lambda seed: torch.cat([y for _, y in d.train_loader(batch_size=16, seed=seed)])
    assert torch.equal(order(0), order(0))
    assert not torch.equal(order(0), order(1))
    assert torch.equal(order(0).sort().values, d.y_train.sort().values)
    assert torch.equal(torch.cat([y for _, y in d.test_loader()]), d.y_test)


def test_loader_bad_input():
    X, y = torch.zeros(4, 2), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="same number of rows"):
        make_loader(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(X, torch.zeros(4, dtype=torch.long), batch_size=0)
    with pytest.raises(TypeError):
        make_loader(X.numpy(), y)


def test_subset_and_to():
    d = load_dataset("digits")
    s = d.subset(100, seed=3)
    assert len(s.X_train) == 100 and torch.equal(s.X_test, d.X_test)
    assert torch.equal(d.subset(100, seed=3).y_train, s.y_train)
    with pytest.raises(ValueError, match="n_train"):
        d.subset(0)
    with pytest.raises(ValueError, match="n_train"):
        d.subset(10**6)
    assert d.to("cpu").X_train.device.type == "cpu"


def test_subset_keeps_per_row_meta_aligned():
    d = load_dataset("wine")
    d.meta["row_id"] = {"names": None, "train": torch.arange(len(d.y_train)), "test": torch.arange(len(d.y_test))}
    s = d.subset(20, seed=1)
    assert torch.equal(d.X_train[s.meta["row_id"]["train"]], s.X_train)
    assert torch.equal(s.meta["row_id"]["test"], d.meta["row_id"]["test"])


def test_loader_batches_are_sized_and_exhaustive():
    d = load_dataset("wine")
    sizes = [len(y) for _, y in d.train_loader(batch_size=50)]
    assert sizes == [50, 50, len(d.y_train) - 100]
    X0, _ = next(iter(d.test_loader(batch_size=10)))
    assert torch.equal(X0, d.X_test[:10])


def test_diabetes_binary_target_and_sensitive_sex():
    from sklearn.datasets import load_diabetes as sk_diabetes

    d = load_dataset("diabetes", seed=0)
    raw = sk_diabetes(scaled=False)
    assert d.input_shape == (10,) and d.num_classes == 2 and d.classes == ("low", "high")
    assert len(d.X_train) + len(d.X_test) == 442
    assert torch.allclose(d.X_train.mean(0), torch.zeros(10), atol=1e-5)
    # binarised at the median: the two classes are exactly balanced over all 442 patients
    y = torch.cat([d.y_train, d.y_test])
    assert torch.bincount(y).tolist() == [221, 221]
    assert int((raw.target > 140.5).sum()) == 221
    sex = d.meta["sex"]
    assert sex["names"] == ("1", "2") and sex["column"] == d.feature_names.index("sex") == 1
    codes = torch.cat([sex["train"], sex["test"]])
    assert torch.bincount(codes).tolist() == [235, 207]
    # the column holds exactly the standardised value of each row's code
    assert torch.allclose(d.X_train[:, 1], sex["values"][sex["train"]], atol=1e-5)
    assert torch.allclose(d.X_test[:, 1], sex["values"][sex["test"]], atol=1e-5)
    assert sex["values"][0] < sex["values"][1]
    # seeded split, and subset keeps the attribute aligned with its rows
    assert torch.equal(load_dataset("diabetes", seed=0).X_train, d.X_train)
    assert not torch.equal(load_dataset("diabetes", seed=1).X_train, d.X_train)
    s = d.subset(50, seed=2)
    assert torch.allclose(s.X_train[:, 1], sex["values"][s.meta["sex"]["train"]], atol=1e-5)
