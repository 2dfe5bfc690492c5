"""safe_load: the safe loader per format, refusal with a named reason for the rest, bad input."""
import numpy as np
import pytest
import torch

from mlsec_kit import supply_chain as sc


def test_safe_load_reads_the_safe_formats(benign_dir):
    _, files = benign_dir
    st = sc.safe_load(files["safetensors"])
    pt = sc.safe_load(files["torch"])
    assert set(st) == set(pt) == {"w", "b"} and torch.equal(st["w"], pt["w"])
    assert np.array_equal(sc.safe_load(files["npy"]), np.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize("fmt", ["pickle", "joblib"])
def test_safe_load_refuses_pickles_even_benign_ones(benign_dir, fmt):
    _, files = benign_dir
    with pytest.raises(sc.UnsafeFormatError, match=f"is a {fmt} file.*Convert it.*safetensors"):
        sc.safe_load(files[fmt])


def test_safe_load_names_the_global_a_torch_file_needs(evil_dir):
    _, files = evil_dir
    for technique, name in (("exec", "exec"), ("os_system", "posix.system"), ("subprocess", "subprocess.call")):
        with pytest.raises(sc.UnsafeFormatError, match=rf"names the global {name}\b"):
            sc.safe_load(files["torch", technique][0])
    with pytest.raises(sc.UnsafeFormatError, match="array of Python objects"):
        sc.safe_load(files["npy", "exec"][0])
    assert issubclass(sc.UnsafeFormatError, ValueError)


def test_safe_load_in_a_child_never_runs_a_payload(evil_dir, tmp_path):
    _, files = evil_dir
    keys = [k for k in files if k[1] in ("exec", "obfuscated")]
    outs = sc.run_loads([files[k][0] for k in keys], loader="safe_load",
                        markers=[tmp_path / f"{f}-{t}" for f, t in keys])
    assert all(o.refused and not o.ran_code and "UnsafeFormatError" in o.error for o in outs), outs
    assert not any(tmp_path.iterdir())


def test_a_pickle_named_safetensors_is_still_refused(tmp_path):
    p = sc.make_benign(tmp_path / "model.safetensors", fmt="pickle", obj={"w": [1.0]})
    with pytest.raises(sc.UnsafeFormatError, match="is a pickle file"):
        sc.safe_load(p)


def test_to_safetensors_round_trip_and_shared_tensors(tmp_path):
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    p = sc.to_safetensors({"a": w, "a_t": w.t(), "tied": w}, tmp_path / "m.safetensors")
    back = sc.safe_load(p)
    assert torch.equal(back["a"], w) and torch.equal(back["a_t"], w.t()) and torch.equal(back["tied"], w)


def test_bad_input(tmp_path, benign_dir):
    _, files = benign_dir
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        sc.safe_load(tmp_path / "missing.pt")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="none of the known formats"):
        sc.safe_load(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="larger than max_bytes = 16"):
        sc.safe_load(files["safetensors"], max_bytes=16)
    with pytest.raises(TypeError, match="state_dict must map str to torch.Tensor"):
        sc.to_safetensors({"a": 1}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="state_dict must be a non-empty mapping"):
        sc.to_safetensors([], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="path's folder must exist"):
        sc.to_safetensors({"a": torch.zeros(1)}, tmp_path / "no" / "x.safetensors")
