"""detect_format reads content, not names; check_size refuses before reading."""
import pickle
import zipfile

import pytest

from mlsec_kit import supply_chain as sc


def test_detects_each_format(benign_dir, evil_dir):
    for fmt, path in benign_dir[1].items():
        assert sc.detect_format(path) == fmt
    for (fmt, _), (path, _) in evil_dir[1].items():
        assert sc.detect_format(path) == fmt  # named .bin: the content decides


def test_content_not_extension(tmp_path, benign_dir):
    p = tmp_path / "model.safetensors"
    p.write_bytes(pickle.dumps({"a": 1}, protocol=0))  # protocol 0: no magic byte
    assert sc.detect_format(p) == "pickle"
    q = tmp_path / "weights.pkl"
    q.write_bytes(benign_dir[1]["safetensors"].read_bytes())
    assert sc.detect_format(q) == "safetensors"
    r = tmp_path / "plain.joblib"
    r.write_bytes(pickle.dumps([1], protocol=4))
    assert sc.detect_format(r) == "joblib"  # the extension is a hint only for content that is a pickle


def test_unknown_and_missing(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="without a \\*/data.pkl member"):
        sc.detect_format(z)
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02 not a model")
    with pytest.raises(ValueError, match=r"path .* is in none of the known formats \('pickle', 'torch'"):
        sc.detect_format(tmp_path / "x.bin")
    with pytest.raises(FileNotFoundError, match="path does not exist"):
        sc.detect_format(tmp_path / "missing")
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        sc.detect_format(b"/tmp/x")


def test_check_size(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100)
    assert sc.check_size(p, max_bytes=100) == 100
    with pytest.raises(ValueError, match="100 bytes, larger than max_bytes = 99"):
        sc.check_size(p, max_bytes=99)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        sc.check_size(p, max_bytes=1.5)
    assert sc.MAX_BYTES == 2 ** 30
