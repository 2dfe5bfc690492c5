"""The full profile's download, parsers and loaders, on tiny files in the real formats written here.

Nothing touches the network: files are served through ``file://`` URLs, and the one ``http://`` URL
points at a closed local port.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsec_kit.data import load_dataset
from mlsec_kit.data import full
from mlsec_kit.data.download import (ChecksumMismatchError, DatasetUnavailableError, Resource, cache_dir,
                                     fetch)
from mlsec_kit.data.formats import ADULT_NUMERIC, read_adult, read_cifar10, read_idx

REFUSED_URL = "http://127.0.0.1:9/nothing-listens-here"  # port 9 (discard) is closed: refused at once


# --- writers of the real formats --------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype("u1"): 0x08, np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2 did when CIFAR-10 was made: bytes as ``str`` (BINSTRING), numpy under ``numpy.core``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[type] = save_global
    dispatch[type(len)] = save_global


def py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def py3_dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cifar_tar(batches: dict[str, dict], *, skip: tuple[str, ...] = (), dumps=py2_dumps) -> bytes:
    """A cifar-10-python.tar.gz of protocol-2 pickles, by default written as Python 2 wrote the original."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, entry in batches.items():
            if name in skip:
                continue
            raw = dumps(entry)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def cifar_batches(rng: np.random.Generator) -> dict[str, dict]:
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    out = {n: {"batch_label": n, "data": rng.integers(0, 256, (k, 3072), dtype=np.uint8),
               "labels": [int(v) for v in rng.integers(0, 10, k)]}
           for n, k in zip(names, (2, 2, 1, 2, 3, 4))}
    out["batches.meta"] = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                           "horse", "ship", "truck"], "num_cases_per_batch": 10000}
    return out


# Rows in the files' own format (comma and space, '?' for missing), so longer than the code's line width.
ADULT_DATA = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K
31, Private, 45781, Masters, 14, Never-married, Prof-specialty, Not-in-family, White, Female, 14084, 0, 50, United-States, >50K
37, Private, 280464, Some-college, 10, Married-civ-spouse, Exec-managerial, Husband, Black, Male, 0, 0, 80, United-States, >50K

"""
ADULT_TEST = """\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, ?, >50K.
28, Local-gov, 336951, Assoc-acdm, 12, Married-civ-spouse, Protective-serv, Husband, White, Female, 0, 0, 40, Canada, >50K.
"""


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the default cache at a temporary folder, so no test can touch ~/.cache."""
    monkeypatch.setenv("MLSEC_DATA", str(tmp_path / "default-cache"))
    return tmp_path / "default-cache"


def serve_idx(monkeypatch, src: Path, dataset: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write the four IDX files of a tiny MNIST-like dataset and point the registry at them."""
    arrays = {"train_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 5).astype(np.uint8),
              "test_images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 3).astype(np.uint8)}
    entries = {}
    for role, array in arrays.items():
        name = full.RESOURCES[dataset][role].filename
        data = gzip.compress(idx_bytes(array))
        entries[role] = Resource(name, (write(src / name, data).as_uri(),), md5(data))
    monkeypatch.setitem(full.RESOURCES, dataset, entries)
    return arrays


# --- formats -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path, rng, compress):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    pack = gzip.compress if compress else (lambda b: b)
    got_images = read_idx(write(tmp_path / "img", pack(idx_bytes(images))), ndim=3)
    got_labels = read_idx(write(tmp_path / "lbl", pack(idx_bytes(labels))), ndim=1)
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_converts_big_endian_multibyte_types(tmp_path):
    values = np.array([[1, -2, 70000], [2**31 - 1, 0, -(2**31)]], dtype=np.int32)
    got = read_idx(write(tmp_path / "ints", idx_bytes(values)))
    np.testing.assert_array_equal(got, values)
    assert got.dtype.isnative


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00\x08\x03" + b"\0" * 8, "truncated IDX header"),
    (bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\1" * 9, "truncated"),
    (bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + b"\1" * 3, "trailing bytes"),
    (b"\x08\x03\x00\x00" + b"\0" * 20, "magic number"),
    (b"\x00\x00\x07\x01" + b"\0" * 20, "magic number"),
    (b"\x00\x00", "magic number"),
])
def test_read_idx_rejects_bad_magic_and_truncation(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        read_idx(write(tmp_path / "bad", data))


def test_read_idx_rejects_truncated_gzip_and_wrong_ndim(tmp_path, rng):
    data = gzip.compress(idx_bytes(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)))
    with pytest.raises(ValueError, match="gzip"):
        read_idx(write(tmp_path / "cut.gz", data[: len(data) // 2]))
    with pytest.raises(ValueError, match="3 dimensions, expected 1"):
        read_idx(write(tmp_path / "ok.gz", data), ndim=1)


@pytest.mark.parametrize("dumps", [py2_dumps, py3_dumps])
def test_read_cifar10_round_trips_pixels_labels_and_classes(tmp_path, rng, dumps):
    batches = cifar_batches(rng)
    got = read_cifar10(write(tmp_path / "cifar-10-python.tar.gz", cifar_tar(batches, dumps=dumps)))
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(got.X_train.reshape(-1, 3072), np.concatenate([b["data"] for b in train]))
    np.testing.assert_array_equal(got.y_train, sum((b["labels"] for b in train), []))
    np.testing.assert_array_equal(got.X_test.reshape(-1, 3072), batches["test_batch"]["data"])
    np.testing.assert_array_equal(got.y_test, batches["test_batch"]["labels"])
    assert got.X_train.shape == (10, 3, 32, 32) and got.X_test.shape == (4, 3, 32, 32)
    assert got.X_train.dtype == np.uint8 and got.y_train.dtype == np.int64
    # channel-first planes: the first 1024 bytes of a row are the red channel
    np.testing.assert_array_equal(got.X_test[0, 0].ravel(), batches["test_batch"]["data"][0, :1024])
    assert got.classes[0] == "airplane" and got.classes[-1] == "truck" and len(got.classes) == 10


def test_read_cifar10_names_a_missing_batch(tmp_path, rng):
    tar = write(tmp_path / "c.tar.gz", cifar_tar(cifar_batches(rng), skip=("data_batch_3",)))
    with pytest.raises(ValueError, match="missing cifar-10-batches-py/data_batch_3"):
        read_cifar10(tar)


def test_read_cifar10_rejects_truncated_archive_and_bad_labels(tmp_path, rng):
    batches = cifar_batches(rng)
    data = cifar_tar(batches)
    with pytest.raises(ValueError, match="truncated"):
        read_cifar10(write(tmp_path / "cut.tar.gz", data[: len(data) // 2]))
    batches["test_batch"]["labels"][0] = 10
    with pytest.raises(ValueError, match=r"labels.*\[0, 10\)"):
        read_cifar10(write(tmp_path / "bad.tar.gz", cifar_tar(batches)))


class _Payload:
    """A pickle that creates a directory when loaded, as a tampered file could run any code."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import os
        return os.mkdir, (str(self.target),)


def test_read_cifar10_refuses_pickles_that_call_functions(tmp_path, rng):
    batches = cifar_batches(rng)
    sentinel = tmp_path / "pwned"
    batches["test_batch"]["data"] = _Payload(sentinel)
    with pytest.raises(ValueError, match="refusing to load"):
        read_cifar10(write(tmp_path / "evil.tar.gz", cifar_tar(batches, dumps=py3_dumps)))
    assert not sentinel.exists()


def test_read_adult_parses_both_files(tmp_path):
    train = read_adult(write(tmp_path / "adult.data", ADULT_DATA.encode()))
    test = read_adult(write(tmp_path / "adult.test", ADULT_TEST.encode()))
    assert train.numeric.shape == (4, 6) and train.categorical.shape == (4, 8)  # the '?' row is dropped
    np.testing.assert_array_equal(train.numeric[0], [39, 77516, 13, 2174, 0, 40])
    assert list(train.categorical[2]) == ["Private", "Masters", "Never-married", "Prof-specialty",
                                          "Not-in-family", "White", "Female", "United-States"]
    np.testing.assert_array_equal(train.y, [0, 0, 1, 1])
    np.testing.assert_array_equal(test.y, [0, 1])  # header skipped, '>50K.' read as 1, '?' row dropped
    np.testing.assert_array_equal(test.numeric[:, 0], [25, 28])


@pytest.mark.parametrize("line, message", [
    ("39, State-gov, 77516, Bachelors, 13\n", "expected 15 comma-separated fields"),
    (ADULT_DATA.splitlines()[0].replace("<=50K", "maybe") + "\n", "income must be one of"),
    (ADULT_DATA.splitlines()[0].replace("39,", "old,") + "\n", "not a number"),
    ("|only a header\n\n", "no complete rows"),
])
def test_read_adult_rejects_malformed_rows(tmp_path, line, message):
    with pytest.raises(ValueError, match=message):
        read_adult(write(tmp_path / "adult.data", line.encode()))


# --- download -----------------------------------------------------------------------------------------------

def test_cache_dir_follows_mlsec_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSEC_DATA", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MLSEC_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mlsec_kit"


def test_fetch_downloads_once_then_uses_the_cache(tmp_path):
    data = b"some bytes of a dataset"
    source = write(tmp_path / "src" / "file.bin", data)
    path = fetch(source.as_uri(), filename="file.bin", checksum=md5(data), root=tmp_path / "cache")
    assert path == tmp_path / "cache" / "file.bin" and path.read_bytes() == data
    source.unlink()  # a second fetch that tried to download would now fail
    again = fetch(source.as_uri(), filename="file.bin", checksum=md5(data), root=tmp_path / "cache")
    assert again == path and again.read_bytes() == data
    assert fetch(source.as_uri(), filename="file.bin", checksum=md5(data), root=tmp_path / "cache",
                 download=False) == path


def test_fetch_verifies_sha256_too(tmp_path):
    data = b"adult rows"
    source = write(tmp_path / "src" / "adult.data", data)
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    assert fetch(source.as_uri(), filename="adult.data", checksum=good, root=tmp_path / "c").read_bytes() == data
    with pytest.raises(ChecksumMismatchError):
        fetch(source.as_uri(), filename="other.data", checksum="sha256:" + "0" * 64, root=tmp_path / "c")


def test_fetch_deletes_a_file_with_the_wrong_checksum(tmp_path):
    source = write(tmp_path / "src" / "file.bin", b"tampered")
    wrong = md5(b"the published bytes")
    with pytest.raises(ChecksumMismatchError, match="expected " + wrong[4:]) as info:
        fetch(source.as_uri(), filename="file.bin", checksum=wrong, root=tmp_path / "cache")
    assert isinstance(info.value, DatasetUnavailableError)
    assert list((tmp_path / "cache").iterdir()) == []  # neither the file nor a temporary part is left


def test_fetch_tries_mirrors_in_order(tmp_path):
    data = b"the real file"
    bad = write(tmp_path / "bad" / "f", b"a corrupted copy")
    good = write(tmp_path / "good" / "f", data)
    missing = (tmp_path / "nowhere" / "f").as_uri()
    path = fetch([missing, REFUSED_URL, bad.as_uri(), good.as_uri()], filename="f", checksum=md5(data),
                 root=tmp_path / "cache", timeout=5)
    assert path.read_bytes() == data


def test_fetch_replaces_a_corrupted_cached_file(tmp_path):
    data = b"the real file"
    source = write(tmp_path / "src" / "f", data)
    write(tmp_path / "cache" / "f", b"bit rot")
    assert fetch(source.as_uri(), filename="f", checksum=md5(data), root=tmp_path / "cache").read_bytes() == data


@pytest.mark.parametrize("url", ["missing-file", REFUSED_URL])
def test_fetch_unreachable_says_what_failed_and_how_to_run_small(tmp_path, url):
    if url == "missing-file":
        url = (tmp_path / "does-not-exist.gz").as_uri()
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(url, filename="x.gz", checksum=md5(b""), root=tmp_path / "cache", timeout=5)
    message = str(info.value)
    assert url in message and "MLSEC_PROFILE=small" in message and "digits" in message
    assert not isinstance(info.value, ChecksumMismatchError)
    assert not (tmp_path / "cache" / "x.gz").exists()


def test_fetch_without_download_reports_a_cache_miss(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="not in the cache") as info:
        fetch(REFUSED_URL, filename="x.gz", checksum=md5(b""), root=tmp_path, download=False)
    assert "MLSEC_PROFILE=small" in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"checksum": "md5:1234"}, "checksum must be"),
    ({"checksum": "sha1:" + "0" * 40}, "checksum must be"),
    ({"filename": "../escape"}, "filename must be a bare file name"),
    ({"filename": ".."}, "filename must be a bare file name"),
    ({"timeout": 0}, "timeout must be"),
    ({"url": []}, "url must be"),
    ({"url": "no-scheme"}, "url must be"),
])
def test_fetch_validates_its_arguments(tmp_path, kwargs, message):
    args = {"url": REFUSED_URL, "filename": "f", "checksum": md5(b""), "root": tmp_path} | kwargs
    with pytest.raises(ValueError, match=message):
        fetch(args.pop("url"), **args)


# --- loaders ------------------------------------------------------------------------------------------------

def test_registry_pins_a_published_checksum_and_a_mirror_for_every_file():
    for dataset in full.RESOURCES:
        for role, res in full.RESOURCES[dataset].items():
            assert res.checksum.split(":")[0] in ("md5", "sha256"), (dataset, role)
            assert all(u.startswith(("https://", "http://")) and u.endswith(res.filename) for u in res.urls)
    assert set(full.RESOURCES) == {"mnist", "fashion_mnist", "cifar10", "adult"}
    assert len(full.RESOURCES["mnist"]["train_images"].urls) >= 2


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_loaders_scale_pixels_and_keep_labels(tmp_path, monkeypatch, rng, name):
    arrays = serve_idx(monkeypatch, tmp_path / "src", name, rng)
    ds = load_dataset(name, root=tmp_path / "cache")
    assert ds.name == name and ds.X_train.shape == (5, 1, 28, 28) and ds.X_test.shape == (3, 1, 28, 28)
    assert ds.X_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert torch.equal(ds.X_train[:, 0], torch.from_numpy(arrays["train_images"]).float() / 255)
    assert torch.equal(ds.y_test, torch.from_numpy(arrays["test_labels"]).long())
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0 and ds.num_classes == 10
    assert (tmp_path / "cache" / name / "train-images-idx3-ubyte.gz").is_file()


def test_mnist_loads_from_the_cache_once_the_sources_are_gone(tmp_path, monkeypatch, rng):
    serve_idx(monkeypatch, tmp_path / "src", "mnist", rng)
    first = full.load_mnist()  # default root: $MLSEC_DATA, set by the autouse fixture
    for f in (tmp_path / "src").iterdir():
        f.unlink()
    second = full.load_mnist(download=False)
    assert torch.equal(first.X_train, second.X_train) and torch.equal(first.y_test, second.y_test)


def test_mnist_rejects_labels_that_do_not_match_the_images(tmp_path, monkeypatch, rng):
    serve_idx(monkeypatch, tmp_path / "src", "mnist", rng)
    data = gzip.compress(idx_bytes(np.zeros(4, dtype=np.uint8)))  # 4 labels for 5 images
    res = full.RESOURCES["mnist"]["train_labels"]
    src = write(tmp_path / "src2" / res.filename, data)
    monkeypatch.setitem(full.RESOURCES["mnist"], "train_labels", Resource(res.filename, (src.as_uri(),), md5(data)))
    with pytest.raises(ValueError, match="expected 5 labels"):
        full.load_mnist(root=tmp_path / "cache")


def test_cifar10_loader(tmp_path, monkeypatch, rng):
    batches = cifar_batches(rng)
    data = cifar_tar(batches)
    src = write(tmp_path / "src" / "cifar-10-python.tar.gz", data)
    monkeypatch.setitem(full.RESOURCES, "cifar10",
                        {"archive": Resource("cifar-10-python.tar.gz", (src.as_uri(),), md5(data))})
    ds = load_dataset("cifar10", root=tmp_path / "cache")
    assert ds.X_train.shape == (10, 3, 32, 32) and ds.X_test.shape == (4, 3, 32, 32)
    expected = torch.from_numpy(batches["test_batch"]["data"].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(ds.X_test, expected)
    assert ds.y_train.tolist() == sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert ds.classes[3] == "cat" and ds.y_train.dtype == torch.int64


def serve_adult(monkeypatch, src: Path) -> None:
    entries = {}
    for role, name, text in (("train", "adult.data", ADULT_DATA), ("test", "adult.test", ADULT_TEST)):
        data = text.encode()
        checksum = "sha256:" + hashlib.sha256(data).hexdigest()
        entries[role] = Resource(name, (write(src / name, data).as_uri(),), checksum)
    monkeypatch.setitem(full.RESOURCES, "adult", entries)


def test_adult_loader_encodes_standardises_and_keeps_sensitive_attributes(tmp_path, monkeypatch):
    serve_adult(monkeypatch, tmp_path / "src")
    ds = load_dataset("adult", root=tmp_path / "cache")
    names = ds.feature_names
    assert ds.X_train.shape == (4, len(names)) and ds.X_test.shape == (2, len(names))
    assert names[:6] == ADULT_NUMERIC and "sex=Female" in names and "native-country=United-States" in names
    assert ds.classes == ("<=50K", ">50K") and ds.y_train.tolist() == [0, 0, 1, 1] and ds.y_test.tolist() == [0, 1]
    # numeric columns: standardised with the training set's statistics, applied to the test set too
    ages = np.array([39, 50, 31, 37.0])
    assert torch.allclose(ds.X_train[:, 0], torch.tensor((ages - ages.mean()) / ages.std(), dtype=torch.float32))
    assert ds.X_test[0, 0].item() == pytest.approx((25 - ages.mean()) / ages.std(), rel=1e-6)
    # categorical columns: 0/1, one per training category; a value unseen in training encodes as all zeros
    onehot = ds.X_train[:, 6:]
    assert set(onehot.unique().tolist()) == {0.0, 1.0} and torch.all(onehot.sum(1) == 8)
    assert ds.X_test[1, 6:].sum().item() == 8 - 4  # Local-gov, Assoc-acdm, Protective-serv, Canada: unseen
    assert "native-country=South" not in names  # only on the dropped row with a '?'
    assert ds.X_test[1, names.index("sex=Female")].item() == 1.0
    # raw sensitive attributes
    assert ds.meta["sex"]["names"] == ("Female", "Male")
    assert ds.meta["sex"]["train"].tolist() == [1, 1, 0, 1] and ds.meta["sex"]["test"].tolist() == [1, 0]
    assert ds.meta["race"]["names"] == ("Black", "White")
    assert ds.meta["race"]["train"].tolist() == [1, 1, 1, 0] and ds.meta["race"]["test"].tolist() == [0, 1]


def test_loaders_offline_raise_dataset_unavailable(tmp_path, monkeypatch):
    monkeypatch.setitem(full.RESOURCES, "cifar10", {"archive": Resource(
        "cifar-10-python.tar.gz", (REFUSED_URL + "/cifar-10-python.tar.gz",), md5(b""))})
    with pytest.raises(DatasetUnavailableError, match="MLSEC_PROFILE=small"):
        full.load_cifar10(root=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="not in the cache"):
        load_dataset("adult", root=tmp_path, download=False)


def test_loaders_check_their_arguments(tmp_path):
    with pytest.raises(TypeError, match="download must be a bool"):
        full.load_mnist(root=tmp_path, download="yes")
    with pytest.raises(TypeError, match="root must be"):
        full.load_adult(root=3)


def test_load_dataset_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
