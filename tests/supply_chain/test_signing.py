"""Pins and signatures: verification holds on the untouched folder and fails on every change; a backdoored
model signed by its author verifies (a signature proves who and unchanged, not benign)."""
import hashlib
import shutil

import pytest
import torch

from mlsec_kit import models
from mlsec_kit import supply_chain as sc
from mlsec_kit.data.download import file_digest


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed")
    model = root / "model"
    model.mkdir()
    torch.manual_seed(0)
    sc.to_safetensors(models.mlp((1, 8, 8), 10).state_dict(), model / "model.safetensors")
    (model / "config.json").write_text('{"hidden": [64]}')
    keys = root / "keys"
    keys.mkdir()
    priv, pub = sc.generate_keypair(keys)
    sig = sc.sign_model(model, private_key=priv)
    return root, model, priv, pub, sig


def copy(signed, tmp_path):
    root, model, priv, pub, sig = signed
    d = tmp_path / "model"
    shutil.copytree(model, d)
    return d, pub, shutil.copy(sig, tmp_path / "model.sig")


def test_pins(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"weights"), b.write_bytes(b"data")
    pins = sc.pin([a, b])
    digest = hashlib.sha256(b"weights").hexdigest()
    assert pins["a.bin"] == "sha256:" + digest == "sha256:" + file_digest(a, "sha256")
    assert sc.verify_pins(pins, tmp_path) == []
    a.write_bytes(b"weightz")
    b.unlink()
    assert sc.verify_pins(pins, tmp_path) == [("a.bin", pins["a.bin"], sc.sha256_file(a)),
                                              ("b.bin", pins["b.bin"], None)]


def test_signature_verifies_untouched(signed, tmp_path):
    root, model, priv, pub, sig = signed
    assert sig == root / "model.sig" and sc.verify_model(model, public_key=pub)
    d, pub, s = copy(signed, tmp_path)
    assert sc.verify_model(d, public_key=pub, signature=s)  # a copy elsewhere verifies too


def test_one_byte_changed_fails(signed, tmp_path):
    d, pub, s = copy(signed, tmp_path)
    data = bytearray((d / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (d / "model.safetensors").write_bytes(bytes(data))
    assert not sc.verify_model(d, public_key=pub, signature=s)
    with pytest.raises(ValueError, match="model.safetensors"):
        sc.verify_model(d, public_key=pub, signature=s, raise_on_failure=True)


def test_added_and_removed_files_fail(signed, tmp_path):
    d, pub, s = copy(signed, tmp_path)
    (d / "extra.pkl").write_bytes(b"N.")
    assert not sc.verify_model(d, public_key=pub, signature=s)
    (d / "extra.pkl").unlink()
    assert sc.verify_model(d, public_key=pub, signature=s)
    (d / "config.json").unlink()
    assert not sc.verify_model(d, public_key=pub, signature=s)


def test_another_key_fails(signed, tmp_path):
    d, _, s = copy(signed, tmp_path)
    _, other = sc.generate_keypair(tmp_path, name="mallory")
    assert not sc.verify_model(d, public_key=other, signature=s)


def test_signed_backdoor_verifies(tmp_path):
    """The author plants a payload and signs: the signature verifies, the scanner still flags the file."""
    d = tmp_path / "model"
    d.mkdir()
    sc.make_malicious(d / "model.pt", fmt="torch", technique="exec", marker=tmp_path / "never.marker")
    priv, pub = sc.generate_keypair(tmp_path)
    sig = sc.sign_model(d, private_key=priv, signature=d / "model.sig")  # inside the folder: excluded from it
    assert sc.verify_model(d, public_key=pub, signature=sig)
    assert not sc.scan(d / "model.pt").safe
    assert not (tmp_path / "never.marker").exists()


def test_bad_input(signed, tmp_path):
    root, model, priv, pub, sig = signed
    with pytest.raises(ValueError, match="model_dir must be an existing folder"):
        sc.sign_model(tmp_path / "nope", private_key=priv)
    with pytest.raises(FileNotFoundError, match="private_key does not exist"):
        sc.sign_model(model, private_key=tmp_path / "none.key")
    with pytest.raises(FileNotFoundError, match="signature does not exist"):
        sc.verify_model(model, public_key=pub, signature=tmp_path / "none.sig")
    with pytest.raises(ValueError, match="keys are never overwritten"):
        sc.generate_keypair(priv.parent)
    with pytest.raises(ValueError, match=r"pins\['a'\] must be 'sha256:' and 64 hex digits"):
        sc.verify_pins({"a": "md5:00"}, tmp_path)
    with pytest.raises(ValueError, match="pins must be keyed by bare file names"):
        sc.verify_pins({"../a": "sha256:" + "0" * 64}, tmp_path)
    with pytest.raises(TypeError, match="paths must be a collection of files"):
        sc.pin(str(sig))
    with pytest.raises(ValueError, match="distinct file names"):
        (tmp_path / "x").mkdir(), (tmp_path / "x" / "model.sig").write_text("1")
        sc.pin([sig, tmp_path / "x" / "model.sig"])
