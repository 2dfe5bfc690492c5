"""The demonstration payloads run on an unsafe load and do nothing but write their marker: asserted from the
audit events (PEP 578) of the child process that loads them, for every technique in every format."""
import shlex
import sys

import pytest

from mlsec_kit import supply_chain as sc

UNSAFE = {"pickle": "pickle.load", "torch": "torch.load(weights_only=False)", "joblib": "joblib.load",
          "npy": "np.load(allow_pickle=True)"}
#: audit events no payload may raise: deletion, renaming, permission changes, signals, the network
FORBIDDEN = ("os.remove", "os.unlink", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.kill", "shutil.",
             "socket.", "urllib.", "http.", "ftplib.", "os.fork", "os.exec", "os.posix_spawn", "ctypes.", "os.putenv")


@pytest.fixture(scope="module")
def outcomes(evil_dir):
    """Each format's eight payloads loaded with its unsafe loader, one child process per format."""
    _, files = evil_dir
    out = {}
    for fmt, loader in UNSAFE.items():
        keys = [k for k in files if k[0] == fmt]
        res = sc.run_loads([files[k][0] for k in keys], loader=loader, markers=[files[k][1] for k in keys])
        out.update(zip(keys, res))
    return out


@pytest.mark.parametrize("fmt", sc.MALICIOUS_FORMATS)
@pytest.mark.parametrize("technique", sc.TECHNIQUES)
def test_payload_runs_and_only_writes_its_marker(outcomes, evil_dir, fmt, technique):
    folder, files = evil_dir
    path, marker = files[fmt, technique]
    o = outcomes[fmt, technique]
    assert o.ran_code and not o.refused, o
    assert marker.read_text() == sc.MARKER_TEXT
    argv = [sys.executable, "-c", sc.marker_code(marker)]
    for event, args in o.events:
        assert not event.startswith(FORBIDDEN), (event, args)
        if event == "open":  # the only file opened for writing in the loading process is the marker
            assert args[0] == str(marker), args
        elif event == "os.system":  # the shell runs exactly the marker-writing command
            assert args == (shlex.join(argv),)
        elif event == "subprocess.Popen":
            assert args[1] == str(argv)
        elif event == "exec":  # code compiled from a string, or a module being imported, nothing else
            assert args[0] == "<string>" or args[0].endswith(".py") or args[0].startswith("<frozen"), args
        else:
            raise AssertionError(f"unexpected audit event {event} {args}")
    shells = [e for e, _ in o.events if e in ("os.system", "subprocess.Popen")]
    writes = [a for e, a in o.events if e == "open"]
    assert len(shells) + len(writes) == 1, o.events  # one way or another, exactly one marker write
    assert marker.parent == folder


def test_folder_holds_only_payloads_and_markers(outcomes, evil_dir):
    folder, files = evil_dir
    expected = {p.name for p, _ in files.values()} | {m.name for _, m in files.values()}
    assert {p.name for p in folder.iterdir()} == expected


def test_obfuscated_payload_never_spells_its_target(evil_dir):
    _, files = evil_dir
    for fmt in sc.MALICIOUS_FORMATS:
        data = files[fmt, "obfuscated"][0].read_bytes()
        assert b"system" not in data and b"posix" not in data
        assert b"system" in files[fmt, "os_system"][0].read_bytes() or fmt == "torch"


def test_safe_loaders_refuse_every_payload(evil_dir, tmp_path):
    _, files = evil_dir
    for fmt, loader in (("torch", "torch.load"), ("torch", "torch.load(weights_only=True)"), ("npy", "np.load")):
        keys = [k for k in files if k[0] == fmt]
        for k, o in zip(keys, sc.run_loads([files[k][0] for k in keys], loader=loader,
                                           markers=[tmp_path / f"{k[1]}.never" for k in keys])):
            assert o.refused and not o.ran_code, (k, o)
    assert not any(tmp_path.iterdir())


def test_payload_arguments(tmp_path):
    with pytest.raises(ValueError, match="technique must be one of"):
        sc.payload("rm_rf", marker=tmp_path / "m")
    with pytest.raises(ValueError, match="marker must be an absolute path"):
        sc.payload("exec", marker="relative/m")
    with pytest.raises(ValueError, match="marker's folder must exist"):
        sc.payload("exec", marker=tmp_path / "no" / "m")
    with pytest.raises(TypeError, match="marker must be a str or path-like"):
        sc.payload("exec", marker=3)
    (tmp_path / "m").write_text("x")
    with pytest.raises(ValueError, match="marker must not exist yet"):
        sc.payload("exec", marker=tmp_path / "m")
    with pytest.raises(ValueError, match="fmt must be one of"):
        sc.make_malicious(tmp_path / "f", fmt="safetensors", technique="exec", marker=tmp_path / "n")
    with pytest.raises(ValueError, match="fmt must be one of"):
        sc.make_benign(tmp_path / "f", fmt="onnx", obj={})
    with pytest.raises(TypeError, match="obj must be a dict of str to torch.Tensor"):
        sc.make_benign(tmp_path / "f", fmt="safetensors", obj={"a": 1})
    with pytest.raises(ValueError, match="path's folder must exist"):
        sc.make_benign(tmp_path / "no" / "f", fmt="pickle", obj=1)


def test_run_load_arguments(tmp_path):
    f = sc.make_benign(tmp_path / "a.pkl", fmt="pickle", obj=[1, 2])
    with pytest.raises(ValueError, match="loader must be one of"):
        sc.run_load(f, loader="yaml.load")
    with pytest.raises(FileNotFoundError, match="path does not exist"):
        sc.run_load(tmp_path / "missing.pkl", loader="pickle.load")
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        sc.run_load(f, loader="pickle.load", timeout=0)
    with pytest.raises(ValueError, match="markers must have one entry per path"):
        sc.run_loads([f], loader="pickle.load", markers=[None, None])
    o = sc.run_load(f, loader="pickle.load")  # a benign pickle: loads, no code, no events
    assert (o.ran_code, o.refused, o.error, o.events) == (False, False, "", ())
