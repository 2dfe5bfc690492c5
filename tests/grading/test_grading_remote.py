"""Judging in the grader's process: the shipped sets' reference solutions earn full marks through the sandboxed
path (a rotating sample, every set when the grader changed), and what comes back from a submission is data
only."""
import json
import math
import os
import struct

import numpy as np
import pytest
import torch

from grading_helpers import ROOT
from mlsec_kit.grading import exercise_ids, get_exercise, wire
from mlsec_kit.grading.runner import grade_notebook
from rotation import changed_exercises, grading_machinery_changed, sample_for


# Every set's reference solutions through the sandbox, as an instructor's grading run takes them: the sets whose
# checks or notebooks the last commit changed, every set when the grader itself changed, and a window of 2 that
# moves with the commit (tests/rotation.py); MLSEC_REMOTE=all (the weekly run) grades all of them. Each set's
# solutions also pass its checks in-process on many seeds in every run (tests/grading/test_chNN.py).
REMOTE = sample_for(exercise_ids(), "MLSEC_REMOTE",
                    changed=set(exercise_ids()) if grading_machinery_changed() else changed_exercises(exercise_ids()))


@pytest.mark.notebooks
@pytest.mark.parametrize("exercise_id", REMOTE)
def test_reference_solutions_get_full_marks_through_the_sandbox(exercise_id, repo_env):
    exercise = get_exercise(exercise_id)
    result = grade_notebook(ROOT / "exercises" / "source" / f"{exercise_id}.ipynb", exercise, seed=11,
                            timeout=240, cell_timeout=120)
    assert result.total == exercise.max_score, "\n".join(q.report() for q in result.questions) + str(result.notes)


def test_values_round_trip_without_pickle():
    value = (torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_(), 3, 2.5, float("nan"), "s",
             [True, None], {"a": np.float64(1.5), 2: np.arange(3)}, torch.empty(0, 4, dtype=torch.int64))
    blobs: list[bytes] = []
    data = json.loads(json.dumps(wire.encode(value, blobs)))
    back = wire.decode(data, blobs)
    assert torch.equal(back[0].detach(), value[0].detach()) and back[0].requires_grad
    assert back[1:3] == (3, 2.5) and back[3] != back[3] and back[4:6] == ("s", [True, None])
    assert isinstance(back[6]["a"], np.float64) and back[6][2].tolist() == [0, 1, 2]
    assert back[7].shape == (0, 4)
    assert type(wire.decode(wire.encode(torch.nn.Linear(2, 2), []), [])).__name__ == "Linear"


def test_bytes_round_trip_as_raw_blobs():
    """A serialised ciphertext comes back as the same bytes, tagged with its type; never unpickled."""
    import pickle

    blob = bytes(range(256)) * 3
    value = [blob, bytearray(b"\x00\x01"), b"", {"ct": blob}]
    blobs: list[bytes] = []
    data = json.loads(json.dumps(wire.encode(value, blobs)))
    assert blob in blobs and data["v"][0] == {"~": "bytes", "type": "bytes", "n": len(blob), "blob": 0}
    back = wire.decode(data, blobs)
    assert back == value and type(back[0]) is bytes and type(back[1]) is bytearray
    # a pickle stays a byte string: decoding never loads what the submission sent
    payload = pickle.dumps(torch.nn.Linear(2, 2))
    assert wire.decode(wire.encode(payload, (b := [])), b) == payload


def test_bytes_are_size_checked(monkeypatch):
    blobs: list[bytes] = []
    data = wire.encode(b"abcd", blobs)
    for bad in ({**data, "n": 5}, {**data, "n": 3}, {**data, "n": True}, {**data, "n": "4"},
                {**data, "type": "str"}, {**data, "blob": 1}):
        with pytest.raises(wire.WireError):
            wire.decode(bad, blobs)
    monkeypatch.setattr(wire, "MAX_MESSAGE", 3)
    with pytest.raises(wire.WireError):
        wire.decode(data, blobs)  # longer than one message may carry
    too_big = wire.decode(wire.encode(b"abcd", []), [])
    assert isinstance(too_big, wire.Opaque) and type(too_big).__name__ == "bytes_too_large"


@pytest.mark.parametrize("bad", [
    {"~": "tensor", "dtype": "float32", "shape": [3], "blob": 0},          # 4 bytes for 3 floats
    {"~": "tensor", "dtype": "object", "shape": [1], "blob": 0},
    {"~": "ndarray", "dtype": "O", "shape": [1], "blob": 0},
    {"~": "pickle", "v": "gASVAAAAAAAAAAA="},
    {"~": "dict", "v": [[{"~": "list", "v": []}, 1]]},
    [1, 2],
])
def test_malformed_values_are_refused(bad):
    with pytest.raises(wire.WireError):
        wire.decode(bad, [b"\0\0\0\0"])


def test_framing_refuses_oversized_or_broken_messages():
    r, w = os.pipe()
    os.write(w, struct.pack("<Q", 2**40))
    with pytest.raises(wire.WireError):
        wire.receive(r, deadline=None)
    os.write(w, struct.pack("<Q", 3) + b"[1]")
    with pytest.raises(wire.WireError):
        wire.receive(r, deadline=None)
    os.close(w)
    with pytest.raises(wire.WireError):
        wire.receive(r, deadline=None)
    os.close(r)


def test_blocking_a_kit_function_reaches_references_taken_earlier():
    import mlsec_kit.dp as dp
    from mlsec_kit.dp import randomized_response as early
    from mlsec_kit.grading.runner import _Forbidden, _block

    bits = torch.ones(4, dtype=torch.long)
    undo = _block(["mlsec_kit.dp.mechanisms.randomized_response"])
    try:
        for fn in (early, dp.randomized_response, dp.mechanisms.randomized_response):
            with pytest.raises(_Forbidden, match="implement this yourself, without "
                                                  "`mlsec_kit.dp.mechanisms.randomized_response`"):
                fn(bits, epsilon=1.0)
    finally:
        undo()
    assert early(bits, epsilon=1.0, generator=torch.Generator().manual_seed(0)).shape == (4,)


def _guide_block(first_line: str) -> str:
    import re
    text = (ROOT / "book" / "teaching_guide.md").read_text(encoding="utf-8")
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith(first_line)]
    assert len(found) == 1
    return found[0]


def test_the_guides_private_set_loads_with_its_weights(tmp_path):
    from mlsec_kit.grading import run_question
    from mlsec_kit.grading.core import load_sets

    (tmp_path / "ch10_variant.py").write_text(_guide_block("# private_sets/ch10_variant.py"))
    assert load_sets(tmp_path) == ["90_dp_variant"]
    question = get_exercise("90_dp_variant").questions["rr_estimate"]
    assert question.max_score == 2 and question.forbid

    def right(reports, epsilon):
        p = math.exp(epsilon) / (1 + math.exp(epsilon))
        return (float(reports.double().mean()) - (1 - p)) / (2 * p - 1)

    assert run_question(question, right, seed=1).score == 2
    assert run_question(question, lambda reports, epsilon: 1.0, seed=1).score == 0
    with pytest.raises(ValueError, match="weight must be a positive number"):
        question.prop("bad", weight=0)
    with pytest.raises(ValueError, match="has 1 properties, got 2 weights"):
        question.set_weights(1, 2)


@pytest.mark.notebooks
def test_objects_cross_the_sandbox_and_stay_honest(tmp_path, repo_env):
    """A callable argument stays in the grader (its counter cannot be faked); in-place edits of tensors,
    a model's mode and weights come back; a result attached to a graph says so."""
    import nbformat

    from mlsec_kit.grading.core import CheckFailure, ExerciseSet

    exercise = ExerciseSet("97_remote_probe", "probe", chapter=97)
    probe = exercise.question("probe", "probe(oracle, x, model) -> tensor")

    class Counter:
        def __init__(self):
            self.rows = 0

        def __call__(self, x):
            self.rows += len(x)
            return x * 2

        def reset(self):
            self.rows = 0

    @probe.prop("counts, mirrors and reports")
    def _prop(fn, rng):
        oracle, x, model = Counter(), torch.ones(3, 2), torch.nn.Linear(2, 2).train()
        out = fn(oracle, x, model)
        if oracle.rows != 6:
            raise CheckFailure(f"rows {oracle.rows}")
        if float(x.sum()) != 0 or model.training or float(model.bias.detach().abs().sum()) != 0:
            raise CheckFailure("changes not mirrored")
        if not out.requires_grad or out.shape != (3, 2):
            raise CheckFailure("result")

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\n"
        "def probe(oracle, x, model):\n"
        "    twice = oracle(x)\n"
        "    assert oracle.rows == 3 and torch.equal(twice, 2 * x)\n"
        "    oracle.reset()\n"
        "    oracle(x); oracle(x)\n"
        "    oracle.rows = 0  # changes only the stand-in\n"
        "    x.zero_()\n"
        "    model.eval()\n"
        "    with torch.no_grad():\n"
        "        model.bias.zero_()\n"
        "    return model(torch.ones(3, 2))\n")])
    nbformat.write(nb, str(tmp_path / "probe.ipynb"))
    result = grade_notebook(tmp_path / "probe.ipynb", exercise, seed=1, timeout=120)
    assert result.total == 1, [q.report() for q in result.questions] + result.notes
