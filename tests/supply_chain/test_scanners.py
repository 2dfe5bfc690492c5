"""The four scanners on the chapter's corpus: the kit's and picklescan's verdicts agree on what both parse, each
tool's rates follow from its rows, and the blind spots the corpus shows are kept, not hidden."""
import hashlib

import pytest

from mlsec_kit import supply_chain as sc
from mlsec_kit.supply_chain import scanners as scs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d, m = tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("markers")
    return scs.build_corpus(d, marker_dir=m, seed=0), m


@pytest.fixture(scope="module")
def rows(corpus):
    return scs.compare_scanners(corpus[0])


def test_corpus_shape_and_names(corpus):
    files, _ = corpus
    bad = [c for c in files if c.malicious]
    good = [c for c in files if not c.malicious]
    assert len(bad) == len(sc.TECHNIQUES) * len(sc.MALICIOUS_FORMATS)
    assert {c.model for c in good} >= {"logistic_regression", "mlp", "small_cnn", "tiny_lm_transformer",
                                       "tiny_lm_lstm", "sklearn_logistic_regression"}
    assert all(sc.detect_format(c.path) == c.fmt for c in files)
    assert all(c.path.suffix == scs.EXTENSIONS[c.fmt] for c in files)
    assert len({c.path.name for c in files}) == len(files)


def test_corpus_is_deterministic(corpus, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "m").mkdir()
    again = scs.build_corpus(tmp_path / "a", marker_dir=tmp_path / "m", seed=0)
    digest = {c.path.name: hashlib.sha256(c.path.read_bytes()).hexdigest() for c in again
              if c.fmt in ("safetensors", "npy") and not c.malicious}
    assert digest == {c.path.name: hashlib.sha256(c.path.read_bytes()).hexdigest() for c in corpus[0]
                      if c.path.name in digest}
    (tmp_path / "b").mkdir(), (tmp_path / "m2").mkdir()
    other = scs.build_corpus(tmp_path / "b", marker_dir=tmp_path / "m2", seed=1)
    assert hashlib.sha256(other[1].path.read_bytes()).digest() != hashlib.sha256(again[1].path.read_bytes()).digest()


def test_corpus_payloads_are_live(corpus):
    files, markers = corpus
    picks = [c for c in files if c.malicious and c.fmt == "pickle"]
    outs = sc.run_loads([c.path for c in picks], loader="pickle.load", markers=[c.marker for c in picks])
    assert all(o.ran_code for o in outs) and sorted(p.name for p in markers.iterdir()) == \
        sorted(c.marker.name for c in picks)


def test_summary_follows_from_rows(rows):
    table = {r["scanner"]: r for r in scs.summary_table(rows)}
    assert list(table) == list(sc.SCANNERS)
    for s, t in table.items():
        mine = [r for r in rows if r["scanner"] == s]
        assert t["malicious"] + t["benign"] == len(mine)
        assert t["detection_rate"] == t["detected"] / t["malicious"]
        assert t["false_positive_rate"] == t["false_positives"] / t["benign"]
        assert t["detected"] + len([r for r in scs.missed(rows) if r["scanner"] == s]) == t["malicious"]


def test_kit_detects_all_and_flags_only_the_custom_class(rows):
    kit = [r for r in rows if r["scanner"] == "mlsec_kit"]
    assert all(r["flagged"] is True for r in kit if r["malicious"])
    assert [r["file"] for r in kit if not r["malicious"] and r["flagged"]] == \
        ["benign-sklearn_logistic_regression.joblib"]


def test_kit_and_picklescan_agree_where_both_parse(rows):
    by = {(r["file"], r["scanner"]): r for r in rows}
    both = [f for (f, s), r in by.items() if s == "picklescan" and r["flagged"] is not None]
    assert len(both) >= 30
    assert all(by[f, "picklescan"]["flagged"] == by[f, "mlsec_kit"]["flagged"] for f in both)


def test_nobody_flags_safetensors(rows):
    assert not any(r["flagged"] for r in rows if r["fmt"] == "safetensors")


def test_blind_spots_are_reported(rows):
    passed_as_clean = [r for r in scs.missed(rows) if r["flagged"] is False]
    # modelscan 0.8.8 misses subprocess in a torch.save file: protocol 2 names it Python 2's "commands"
    assert [(r["scanner"], r["file"]) for r in passed_as_clean] == [("modelscan", "torch-subprocess.pt")]
    not_scanned = {r["scanner"] for r in scs.missed(rows) if r["flagged"] is None}
    assert {"picklescan", "modelscan", "fickling"} <= not_scanned  # joblib's raw array bytes stop them


def test_bad_input(tmp_path, corpus):
    f = corpus[0][0].path
    with pytest.raises(ValueError, match="name must be one of"):
        scs.run_scanner("clamav", f)
    with pytest.raises(FileNotFoundError):
        scs.run_scanner("mlsec_kit", tmp_path / "none.pt")
    with pytest.raises(TypeError, match="corpus must be a non-empty list of CorpusFile"):
        scs.compare_scanners([str(f)])
    with pytest.raises(ValueError, match="scanners must be a non-empty subset"):
        scs.compare_scanners(corpus[0][:1], scanners=["virustotal"])
    with pytest.raises(TypeError, match="rows must be a non-empty list of dicts"):
        scs.summary_table([])
    with pytest.raises(ValueError, match="folder must be an existing folder"):
        scs.build_corpus(tmp_path / "nope", marker_dir=tmp_path)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        scs.build_corpus(tmp_path, marker_dir=tmp_path, seed=-1)
    with pytest.raises(ValueError, match="give a fresh marker_dir"):
        scs.build_corpus(tmp_path, marker_dir=corpus[1])
