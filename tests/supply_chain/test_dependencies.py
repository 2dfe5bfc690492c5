"""requirements.txt audit, typo-squat candidates and the dependency-confusion model."""
import pytest

from mlsec_kit import supply_chain as sc

H1, H2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"

REQS = f"""\
# the book's environment
torch==2.13.0 --hash={H1}
numpy>=2.0  # too loose
scipy
safetensors==0.8.* \\
    --hash={H2}
--extra-index-url https://internal.invalid/simple
mlsec-kit @ git+https://github.invalid/org/mlsec-kit@main
picklescan @ git+https://github.invalid/org/picklescan@{COMMIT}
tool @ https://files.invalid/tool-1.0.tar.gz
"""


def kinds(text):
    return [(i.line, i.name, i.kind) for i in sc.audit_requirements(text)]


def test_parse():
    rows = sc.parse_requirements(REQS)
    assert [r.name for r in rows] == ["torch", "numpy", "scipy", "safetensors", None, "mlsec-kit", "picklescan", "tool"]
    assert rows[0].specifier == "==2.13.0" and rows[0].hashes == (H1,)
    assert rows[3].line == 5 and rows[3].hashes == (H2,)  # the continuation joined
    assert rows[4].option == "--extra-index-url" and rows[4].value == "https://internal.invalid/simple"


def test_audit():
    assert kinds(REQS) == [
        (3, "numpy", "unpinned"), (3, "numpy", "unhashed"),
        (4, "scipy", "unpinned"), (4, "scipy", "unhashed"),
        (5, "safetensors", "unpinned"),  # a wildcard is not a pin
        (7, None, "extra_index"),
        (8, "mlsec-kit", "mutable_url"), (8, "mlsec-kit", "unhashed"),
        (9, "picklescan", "unhashed"),  # a full commit hash is immutable
        (10, "tool", "mutable_url"), (10, "tool", "unhashed"),
    ]
    # without any hash, pip is not in hash mode: no "unhashed" findings
    assert all(k != "unhashed" for _, _, k in kinds("torch==2.13.0\nnumpy\n"))
    assert kinds("torch==2.13.0\n") == []
    assert kinds("not a requirement !!\n") == [(1, None, "invalid")]


def test_typosquats():
    c = sc.typosquats("mlsec-kit")
    for squat in ("mlsec-kits", "mlseckit", "mlsec-kt", "mlsce-kit", "mlssec-kit", "mlsec-kit-python", "mlsec-klt"):
        assert squat in c
    assert "mlsec-kit" not in c and "mlsec_kit" not in c  # the same project by PEP 503
    assert sc.typosquats("torch", known=["torch", "troch", "Torch2", "numpy", "t0rch"]) == ["t0rch", "torch2", "troch"]
    assert len(c) > 300 and c == sorted(set(c))


def test_dependency_confusion():
    idx = {"internal": {"mlsec-kit-internal": {"1.2.0": H1}},
           "public": {"mlsec_kit_internal": {"99.0.0": H2}}}
    assert sc.resolve("mlsec-kit-internal", indexes=idx) == ("public", "99.0.0")  # the attack
    assert sc.resolve("mlsec-kit-internal", indexes=idx, specifier="==1.2.0") == ("internal", "1.2.0")
    assert sc.resolve("mlsec-kit-internal", indexes=idx, strategy="first_index") == ("internal", "1.2.0")
    assert sc.resolve("mlsec-kit-internal", indexes=idx, hashes=[H1]) == ("internal", "1.2.0")
    # same version number uploaded publicly with another file: the hash pin refuses it
    same = {"internal": {"pkg": {"1.0": H1}}, "public": {"pkg": {"1.0": H2}}}
    assert sc.resolve("pkg", indexes=same) == ("internal", "1.0")  # a tie goes to the earlier index
    with pytest.raises(LookupError, match="no index offers pkg with an allowed hash"):
        sc.resolve("pkg", indexes={"public": {"pkg": {"1.0": H2}}}, hashes=[H1])
    assert sc.resolve("torch", indexes={"a": {"torch": ["2.0", "2.13.0", "2.9"]}}) == ("a", "2.13.0")


def test_bad_input():
    with pytest.raises(TypeError, match="text must be a str"):
        sc.audit_requirements(b"torch")
    with pytest.raises(ValueError, match="text line 2 is not a valid requirement"):
        sc.parse_requirements("torch\n==1\n")
    with pytest.raises(ValueError, match="name must be a project name"):
        sc.typosquats("-bad-")
    with pytest.raises(TypeError, match="known must be a collection of names"):
        sc.typosquats("torch", known="torch")
    with pytest.raises(ValueError, match="strategy must be one of"):
        sc.resolve("a", indexes={"x": {"a": ["1"]}}, strategy="random")
    with pytest.raises(TypeError, match="indexes must be a non-empty dict"):
        sc.resolve("a", indexes={})
    with pytest.raises(ValueError, match="not a version"):
        sc.resolve("a", indexes={"x": {"a": ["one"]}})
    with pytest.raises(LookupError, match="no index offers b"):
        sc.resolve("b", indexes={"x": {"a": ["1"]}})
