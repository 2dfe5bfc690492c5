"""The kit's scanner: every payload flagged, benign files clean, agreement with two independent readings of the
imports (pickletools.dis and a recording unpickler that resolves nothing), and one test per central step."""
import io
import pickle
import pickletools
import re
import zipfile

import numpy as np
import pytest
import torch
from pickle_record import unpickler_imports

from mlsec_kit import supply_chain as sc
from mlsec_kit.supply_chain.scan import _normalise


def recorded_globals(data: bytes) -> list:
    """The unpickler's imports (tests/pickle_record.py), normalised and each named once, as the kit lists them."""
    seen = []
    for module, name in unpickler_imports(data):
        q = ".".join(_normalise(module, name))
        if q not in seen:
            seen.append(q)
    return seen


def dis_globals(data: bytes) -> list:
    """GLOBAL/INST arguments as pickletools.dis prints them (protocols < 4 only: no STACK_GLOBAL)."""
    out = io.StringIO()
    pickletools.dis(data, out=out)
    seen = []
    for m in re.finditer(r"(?:GLOBAL|INST)\s+'(\S+) (\S+)'", out.getvalue()):
        q = ".".join(_normalise(m.group(1), m.group(2)))
        if q not in seen:
            seen.append(q)
    return seen


def data_pkl(path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


@pytest.mark.parametrize("fmt", sc.MALICIOUS_FORMATS)
def test_every_payload_is_flagged_dangerous(evil_dir, fmt):
    _, files = evil_dir
    for t in sc.TECHNIQUES:
        r = sc.scan(files[fmt, t][0])
        assert r.format == fmt and not r.safe and any(f.severity == "dangerous" for f in r.findings), (t, str(r))
        assert r.calls.get("REDUCE", 0) >= 1


def test_benign_files_are_safe_and_the_sklearn_model_is_not(benign_dir, tmp_path):
    _, files = benign_dir
    for fmt in ("torch", "safetensors", "npy", "joblib"):
        r = sc.scan(files[fmt])
        assert r.safe and r.format == fmt, str(r)
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(40, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    r = sc.scan(sc.make_benign(tmp_path / "lr.joblib", fmt="joblib", obj=model))
    assert not r.safe and [f.callable for f in r.findings] == ["sklearn.linear_model._logistic.LogisticRegression"]
    assert r.findings[0].severity == "unknown"  # not known to be dangerous: just not on the allow-list


def test_agrees_with_dis_and_a_recording_unpickler(evil_dir, benign_dir):
    _, files = evil_dir
    for t in sc.TECHNIQUES:
        torch_pkl = data_pkl(files["torch", t][0])  # protocol 2: GLOBAL opcodes, readable in dis
        assert sc.pickle_globals(torch_pkl) == dis_globals(torch_pkl) == recorded_globals(torch_pkl)
        raw = files["pickle", t][0].read_bytes()  # protocol 4: STACK_GLOBAL, memoised strings
        assert sc.pickle_globals(raw) == recorded_globals(raw)
        assert dis_globals(raw) == []  # dis alone does not resolve STACK_GLOBAL: why the walk tracks the stack
    benign = data_pkl(benign_dir[1]["torch"])
    assert sc.pickle_globals(benign) == dis_globals(benign) == recorded_globals(benign)


def test_stack_global_is_resolved():
    data = pickle.dumps(sc.payloads._Call(eval, ("1",)), protocol=4)
    assert b"\x93" in data  # STACK_GLOBAL
    assert [(f.opcode, f.callable, f.severity) for f in sc.scan_bytes(data)] == \
        [("STACK_GLOBAL", "builtins.eval", "dangerous")]


def test_memoised_strings_resolve():
    """The second global takes its module name from the memo (BINGET 0), not from a string push."""
    data = (b"\x80\x04" + b"\x8c\x08builtins\x94" + b"\x8c\x07getattr\x93"   # builtins memoised as 0
            + b"h\x00" + b"\x8c\x04eval\x93"                                  # BINGET 0, then eval
            + b"\x8c\x08__name__\x86R.")                                       # getattr(eval, "__name__")
    assert pickle.loads(data) == "eval"  # a valid pickle, harmless to run
    assert "BINGET" in [op.name for op, _, _ in pickletools.genops(data)]
    assert [f.callable for f in sc.scan_bytes(data)] == ["builtins.getattr", "builtins.eval"] == \
        recorded_globals(data)


def test_unresolvable_stack_global_is_a_finding():
    # module name built by a call, not pushed as a string: the walk cannot know it, so it is flagged
    data = b"\x80\x04" + b"\x8c\x08builtins\x8c\x03str\x93" + b"\x8c\x02os\x85R" + b"\x8c\x06system\x93" + b"."
    f = sc.scan_bytes(data)
    assert [(x.opcode, x.callable) for x in f] == [("STACK_GLOBAL", "builtins.str"), ("STACK_GLOBAL", "?")]


def test_every_zip_member_is_scanned(benign_dir, tmp_path):
    src = benign_dir[1]["torch"]
    evil = tmp_path / "extra_member.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(evil, "w") as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr(f"{prefix}/extra.pkl", pickle.dumps(sc.payloads._Call(exec, ("1",)), protocol=2))
    r = sc.scan(evil)
    assert [(f.callable, f.member) for f in r.findings] == [("builtins.exec", f"{prefix}/extra.pkl")]
    assert torch.equal(torch.load(evil, weights_only=True)["w"], torch.load(src, weights_only=True)["w"])


def test_concatenated_pickles_are_all_scanned(tmp_path):
    first = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)
    second = pickle.dumps(sc.payloads._Call(exec, ("1",)), protocol=4)
    p = tmp_path / "two.pkl"
    p.write_bytes(first + second)
    r = sc.scan(p)
    assert [f.callable for f in r.findings] == ["builtins.exec"] and r.findings[0].position >= len(first)
    assert pickle.loads(first + second) == {"w": [1.0, 2.0]}  # pickle.load stops at the first STOP


def test_trailing_bytes_that_do_not_parse_are_flagged(tmp_path):
    p = tmp_path / "junk.pkl"
    p.write_bytes(pickle.dumps([1, 2], protocol=4) + b"\xff\xfe garbage")
    r = sc.scan(p)
    assert not r.safe and r.findings[0].opcode == "-" and r.notes


def test_joblib_payload_after_raw_array_bytes_is_found(evil_dir):
    path = evil_dir[1]["joblib", "exec"][0]
    r = sc.scan(path)
    assert [f.callable for f in r.findings] == ["builtins.exec"]
    assert r.findings[0].position > path.read_bytes().index(b"\xff" * 4)  # after the array's padding and bytes


def test_allow_list_blind_spot(evil_dir):
    path = evil_dir[1]["pickle", "importlib"][0]
    lax = set(sc.DEFAULT_ALLOW) | {"builtins.getattr", "importlib.import_module"}
    assert not sc.scan(path).safe and sc.scan(path, allow=lax).safe


def test_safetensors_header_is_validated(benign_dir, tmp_path):
    data = bytearray(benign_dir[1]["safetensors"].read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].decode()
    bad = header.replace('"data_offsets":[0,', '"data_offsets":[0,9999').encode()
    assert bad != header.encode()
    p = tmp_path / "bad.safetensors"
    p.write_bytes(len(bad).to_bytes(8, "little") + bad + data[8 + n:])
    r = sc.scan(p)
    assert not r.safe and "outside" in r.findings[0].callable


def test_report_text(evil_dir):
    r = sc.scan(evil_dir[1]["torch", "os_system"][0])
    assert "UNSAFE (1 finding(s))" in r.summary() and "posix.system" in str(r) and "data.pkl" in str(r)


def test_bad_input(tmp_path, benign_dir):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        sc.scan(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="larger than max_bytes"):
        sc.scan(benign_dir[1]["torch"], max_bytes=10)
    with pytest.raises(ValueError, match="max_bytes must be an int >= 1"):
        sc.scan(benign_dir[1]["torch"], max_bytes=0)
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"none of the known formats \('pickle'"):
        sc.scan(tmp_path / "t.txt")
    with pytest.raises(TypeError, match="data must be bytes"):
        sc.scan_bytes("text")
    with pytest.raises(ValueError, match="data must be a non-empty"):
        sc.scan_bytes(b"")
    with pytest.raises(TypeError, match="allow must hold"):
        sc.scan_bytes(b"N.", allow=[("os",)])
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        sc.scan(3)
    with pytest.raises(ValueError, match="must be a regular file"):
        sc.scan(tmp_path)


def test_joblib_array_bytes_that_look_like_pickles(tmp_path):
    """Array bytes holding a complete tiny pickle (PROTO 2, STOP) and an empty FRAME must neither stop the scan
    (a false 'unparseable') nor hide a payload after them."""
    import joblib

    tricky = np.frombuffer(b"\x80\x02." * 50 + b"\x95" + b"\x00" * 8 + b"\xff\x80\x04N." * 20, dtype=np.uint8)
    benign = tmp_path / "tricky.joblib"
    joblib.dump({"w": tricky, "i": np.arange(1000)}, benign)
    assert sc.scan(benign).safe, str(sc.scan(benign))
    evil = tmp_path / "tricky-evil.joblib"
    joblib.dump({"w": tricky, "extra": sc.payloads._Call(exec, ("1",))}, evil)
    assert [f.callable for f in sc.scan(evil).findings] == ["builtins.exec"]


def _joblib_bytes(obj) -> bytes:
    import io

    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_joblib_payload_right_after_the_array_bytes_is_found(tmp_path):
    """joblib.load reads an array's bytes by the wrapper's shape and dtype and then goes on unpickling: opcodes
    written right after them, with no FRAME or PROTO to resync on, run. A scanner that looks for the next frame
    skips them (the kit did, and reported this file safe); loading it for real (in a child) shows they run."""
    data = _joblib_bytes({"w": np.arange(4, dtype=np.float64)})
    assert data.endswith(b"s.")
    marker = tmp_path / "marker"
    evil = tmp_path / "after-array.joblib"
    evil.write_bytes(data[:-2] + b"scbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR0.")
    assert b"\x95" not in evil.read_bytes()[226:] and b"\x80" not in evil.read_bytes()[226:]
    r = sc.scan(evil)
    assert [f.callable for f in r.findings] == ["builtins.open"], str(r)
    assert sc.run_load(evil, loader="joblib.load", marker=marker).ran_code


def test_joblib_array_of_unknown_extent_is_a_finding(tmp_path):
    """A wrapper whose shape is not a literal tuple of ints: the scanner cannot know where joblib resumes."""
    data = _joblib_bytes({"w": np.arange(4, dtype=np.float64)})
    i = data.index(b"K\x04\x85")  # shape (4,): BININT1 4, TUPLE1
    p = tmp_path / "odd.joblib"
    p.write_bytes(data[:i] + b"G\x40\x10\x00\x00\x00\x00\x00\x00\x85" + data[i + 3:])  # shape (4.0,): a float
    r = sc.scan(p)
    assert not r.safe and "unknown extent" in r.findings[-1].callable and r.notes


def test_joblib_object_array_payload_is_found(tmp_path):
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "w", sc.payloads._Call(exec, ("1",))
    p = tmp_path / "objects.joblib"
    p.write_bytes(_joblib_bytes({"numbers": np.ones(3), "objects": arr}))
    assert "builtins.exec" in [f.callable for f in sc.scan(p).findings]


def test_extension_registry_opcodes_are_findings():
    """EXT1/EXT2/EXT4 make the unpickler import whatever copyreg's registry maps the code to (pickle's
    documentation of copyreg extension codes): nothing a scanner can resolve from the file."""
    for op in (b"\x82\x07", b"\x83\x07\x01", b"\x84\x07\x00\x00\x01"):
        (f,) = sc.scan_bytes(b"\x80\x02" + op + b")R.")
        assert f.opcode.startswith("EXT") and "extension code" in f.callable
