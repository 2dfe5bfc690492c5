"""The chapter-15 checks (an allow-list pickle scanner on pickletools.genops; which loads of an untrusted file are
safe): every reference solution passes on any seed, correct answers written differently pass too, and each plausible
wrong answer (a grep, a deny-list, a scanner blind to STACK_GLOBAL, to the memo, to INST or to what follows the first
STOP, one that flags every benign state dict, ...) fails on every one of many seeds with a message that says what to
fix. The grader's pickles are never unpickled; the reference's imports are those the real unpickler asks for."""
import io
import json
import pickle
import pickletools
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

from grading_helpers import (ROOT, assert_blank_scores_nothing, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_notebook_states, assert_passes_on_seeds, assert_set_runs_quickly, fails_quickly,
                             run_blocked, solution_functions)
from pickle_record import unpickler_imports

from mlsec_kit import supply_chain as sc
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch15
from mlsec_kit.grading.sets import ch15_pickles as P

EXERCISE_ID = "15_supply_chain"
EXERCISE = get_exercise(EXERCISE_ID)
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("imports", "scan", "scan_zip", "safe_loads")
SEEDS = range(1500, 1520)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the functions (not the cells that write and load files)."""
    return solution_functions(SOURCE, QUESTIONS)


def _namespace() -> dict:
    return {"io": io, "pickle": pickle, "pickletools": pickletools, "zipfile": zipfile, "re": re,
            "TORCH_ALLOW": ch15.TORCH_ALLOW,
            "STRING_OPCODES": {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                               "SHORT_BINSTRING"}}


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: pickle files and the ML supply chain" and EXERCISE.chapter == 15
    assert EXERCISE.extras == ("supplychain",)
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    for name in QUESTIONS[:3]:  # the kit's scanner and the module's reference helpers answer every coding question
        forbid = set(EXERCISE.questions[name].forbid)
        assert {"mlsec_kit.supply_chain.scan.scan_bytes", "mlsec_kit.supply_chain.scan.pickle_globals",
                "mlsec_kit.supply_chain.scan.scan", "mlsec_kit.grading.sets.ch15._walk"} <= forbid
        assert {f"mlsec_kit.grading.sets.ch15._reference_{q}" for q in QUESTIONS[:3]} <= forbid


def test_the_source_notebook_mentions_its_chapter():
    text = SOURCE.read_text(encoding="utf-8")
    assert "chapter 15" in text.lower() and "mlsec-kit[supplychain] @ git+" in text


# ---- the reference solutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


@pytest.mark.parametrize("name", QUESTIONS[:3])
def test_the_module_reference_passes_too(name):
    assert_passes_on_seeds(EXERCISE.questions[name], getattr(ch15, f"_reference_{name}"), range(3))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=5)


def test_a_blank_notebook_scores_nothing():
    assert_blank_scores_nothing(EXERCISE)


# ---- answers built on the kit: they pass unblocked, and cannot run once the grader blocks the kit's scanner ----
def _kit_scan(data, allow):
    if not data:
        raise ValueError("data is empty")
    findings = sc.scan_bytes(data, allow=allow)
    if any(f.opcode == "-" for f in findings):
        raise ValueError("data does not parse")
    return [tuple(f.callable.rsplit(".", 1)) for f in findings]


def _kit_scan_zip(data, allow):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("data is not a zip") from None
    return [(m, *pair) for m in archive.namelist() if m.endswith(".pkl") for pair in _kit_scan(archive.read(m), allow)]


def _reference_walk_imports(data):
    return ch15._walk(data)


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing); answers built on the kit's scanner or on the grader's walk earn
    full marks unblocked and cannot run at all once the grader blocks the question's names (as it does in the
    submission's process; here the answers are called directly, since the grader's own helpers would be blocked
    too)."""
    from mlsec_kit.grading.runner import _block

    assert_forbidden_names_resolve(EXERCISE)
    g = torch.Generator().manual_seed(1)
    data = P.kit_payload_pickle(g, "nested", "pickle", protocol=4)
    archive = P.kit_torch_zip(g, "exec", archive="model")
    for name, fn, args in [("scan", _kit_scan, (data, set(ch15.TORCH_ALLOW))),
                           ("scan_zip", _kit_scan_zip, (archive, set(ch15.TORCH_ALLOW))),
                           ("imports", _reference_walk_imports, (data,)),
                           ("scan", ch15._reference_scan, (data, ch15.TORCH_ALLOW))]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
        undo = _block(list(question.forbid))
        try:
            with pytest.raises(Exception, match="implement this yourself"):
                fn(*args)
        finally:
            undo()
        fn(*args)  # unblocked again


def test_run_blocked_reports_the_kit_answer_as_forbidden():
    result = run_blocked(EXERCISE.questions["scan"], _kit_scan)
    assert result.score <= 1, result.report()


# ---- correct answers written differently -------------------------------------------------------------------------
CORRECT_VARIANTS = '''
import _compat_pickle

MARK, OTHER = object(), object()

def imports_stack_model(data):
    # a model of the whole stack (what a production scanner does), names mapped to Python 3 as the unpickler does
    if not isinstance(data, bytes) or not data:
        raise ValueError("data must be non-empty bytes")
    stream, found = io.BytesIO(data), []
    while stream.tell() < len(data):
        stack, memo = [], {}
        try:
            ops = list(pickletools.genops(stream))
        except ValueError as err:
            raise ValueError(f"data: {err}") from None
        for op, arg, _ in ops:
            if op.name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                if op.name == "STACK_GLOBAL":
                    name, module = stack.pop(), stack.pop()
                else:
                    module, name = arg.split(" ", 1)
                if (module, name) in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[(module, name)]
                found.append((_compat_pickle.IMPORT_MAPPING.get(module, module), name))
            if op.name in STRING_OPCODES:
                stack.append(arg)
            elif op.name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif op.name == "STACK_GLOBAL":
                stack.append(OTHER)
            else:
                before = list(op.stack_before)
                if pickletools.markobject in before:
                    while stack and stack[-1] is not MARK:
                        stack.pop()
                    stack.pop()
                    before = before[:before.index(pickletools.markobject)]
                for _ in before:
                    stack.pop()
                stack.extend(MARK if s is pickletools.markobject else OTHER for s in op.stack_after)
    return found

def imports_by_offsets(data):
    # genops on the bytes from an offset, the offset advanced past each STOP
    if len(data) == 0:
        raise ValueError("data: nothing to scan")
    pos, out = 0, []
    while pos < len(data):
        strings, memo, top, end = [], {}, None, None
        try:
            for op, arg, p in pickletools.genops(data[pos:]):
                if op.name in ("GLOBAL", "INST"):
                    out.append(tuple(arg.split(" ")))
                if op.name in STRING_OPCODES:
                    strings.append(arg)
                if op.name in ("GET", "BINGET", "LONG_BINGET") and isinstance(memo.get(arg), str):
                    strings.append(memo[arg])
                if op.name == "STACK_GLOBAL":
                    out.append((strings[-2], strings[-1]))
                if op.name == "MEMOIZE":
                    memo[len(memo)] = top
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = top
                if op.name in STRING_OPCODES:
                    top = arg
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    top = memo.get(arg)
                elif op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "PROTO", "FRAME"):
                    top = None
                end = p + 1
        except ValueError:
            raise ValueError("data is truncated or not a pickle") from None
        pos += end
    return out

def scan_strings(data, allow):
    # "module.name" strings, duplicates kept, returned as a tuple of lists
    allowed = {m + "." + n for m, n in allow}
    return tuple([m, n] for m, n in imports_stack_model(data) if m + "." + n not in allowed)

def scan_sorted(data, allow):
    return sorted({pair for pair in imports_by_offsets(data) if pair not in allow})

def scan_zip_checked(data, allow):
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError("data must be the bytes of a zip archive")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        out = []
        for info in z.infolist():
            if info.filename.endswith(".pkl"):
                out += [[info.filename, m, n] for m, n in scan_strings(z.read(info), allow)]
        return out

def statements_spaced():
    return "A, e; g"
'''


def test_differently_built_correct_answers_pass():
    """A whole-stack model with Python 2 names mapped, genops on slices from an offset, "module.name" strings with
    duplicates and lists, sorted sets, zipfile.is_zipfile, letters with separators: full marks."""
    namespace = _namespace()
    exec(textwrap.dedent(CORRECT_VARIANTS), namespace)
    for name, fn in [("imports", "imports_stack_model"), ("imports", "imports_by_offsets"),
                     ("scan", "scan_strings"), ("scan", "scan_sorted"), ("scan_zip", "scan_zip_checked"),
                     ("safe_loads", "statements_spaced")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(6))


# ---- typical mistakes ------------------------------------------------------------------------------------------
IMPORTS = '''
def imports(data):
    if not data:
        raise ValueError("data is empty")
    stream, found = io.BytesIO(data), []
    while stream.tell() < len(data):
        memo, strings, top = {}, [], None
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):
                    module, _, attr = arg.partition(" ")
                    found.append((module, attr))
                    top = None
                elif name in STRING_OPCODES:
                    top = arg
                    strings.append(arg)
                elif name == "MEMOIZE":
                    memo[len(memo)] = top
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = top
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    top = memo.get(arg)
                    if isinstance(top, str):
                        strings.append(top)
                elif name == "STACK_GLOBAL":
                    found.append((strings[-2], strings[-1]))
                    top = None
                elif name not in ("PROTO", "FRAME"):
                    top = None
        except ValueError as err:
            raise ValueError(f"data is not complete pickles: {err}") from None
    return found
'''


def _mutate(code: str, *changes: tuple[str, str]) -> str:
    """``code`` with each ``old`` replaced by ``new`` (each must occur)."""
    for old, new in changes:
        assert old in code, old
        code = code.replace(old, new)
    return code


IMP_GLOBAL_ONLY = _mutate(IMPORTS, ("found.append((strings[-2], strings[-1]))", "pass   # taken for data"))
IMP_NO_MEMO = _mutate(IMPORTS, ("strings.append(top)", "pass   # the memo is ignored"))
IMP_FIRST_STOP = _mutate(IMPORTS, ("while stream.tell() < len(data):", "for _ in range(1):   # pickle.load reads one"))
IMP_NO_INST = _mutate(IMPORTS, ('if name in ("GLOBAL", "INST"):', 'if name == "GLOBAL":'))
IMP_SWAPPED = _mutate(IMPORTS, ("(strings[-2], strings[-1])", "(strings[-1], strings[-2])"))
IMP_SHORT_ONLY = _mutate(IMPORTS, ("elif name in STRING_OPCODES:", 'elif name == "SHORT_BINUNICODE":'))
IMP_DEDUP = _mutate(IMPORTS, ("    return found", "    return list(dict.fromkeys(found))   # each import once"))
IMP_NO_CHECK = _mutate(IMPORTS, ('raise ValueError("data is empty")', "return []"),
                       ('raise ValueError(f"data is not complete pickles: {err}") from None',
                        "raise   # genops' own message"))
IMP_MEMO_COUNTS_STRINGS = _mutate(IMPORTS, (
    "                elif name == \"MEMOIZE\":\n                    memo[len(memo)] = top\n",
    "                elif name == \"MEMOIZE\":\n                    if top is not None:   # only strings get a slot\n"
    "                        memo[len(memo)] = top\n"))
IMP_REGEX = '''
def imports(data):
    if not data:
        raise ValueError("data is empty")
    # GLOBAL's text argument, found with a regular expression
    return [(m.decode(), n.decode()) for m, n in re.findall(rb"c([\\w.]+)\\n([\\w.]+)\\n", data)]
'''

SCAN = IMPORTS + '''
def scan(data, allow):
    flagged = []
    for pair in imports(data):
        if pair not in allow and pair not in flagged:
            flagged.append(pair)
    return flagged
'''
SC_GREP = IMPORTS + '''
def scan(data, allow):
    imports(data)   # only to refuse what does not parse
    return [("os", "system")] if b"os" in data else []
'''
SC_GREP_WORDS = SCAN.replace("def scan(", "def right_scan(") + '''
def scan(data, allow):
    # the right list whenever a suspicious word occurs in the bytes; otherwise "safe"
    found = right_scan(data, allow)
    return found if any(word in data for word in (b"os", b"system", b"exec", b"eval", b"subprocess")) else []
'''
SC_DENY = IMPORTS + '''
def scan(data, allow):
    deny = {"os", "posix", "nt", "subprocess"}
    return [(m, n) for m, n in imports(data)
            if m in deny or (m in ("builtins", "__builtin__") and n in ("eval", "exec"))]
'''
SC_NO_STACK_GLOBAL = _mutate(SCAN, ("found.append((strings[-2], strings[-1]))", "pass"))
SC_NO_MEMO = _mutate(SCAN, ("strings.append(top)", "pass"))
SC_FIRST_STOP = _mutate(SCAN, ("while stream.tell() < len(data):", "for _ in range(1):"))
SC_NO_INST = _mutate(SCAN, ('if name in ("GLOBAL", "INST"):', 'if name == "GLOBAL":'))
SC_EVERY_REDUCE = IMPORTS + '''
def scan(data, allow):
    # a file that calls anything (REDUCE) is unsafe
    found = imports(data)
    return found if any(op.name == "REDUCE" for op, _, _ in pickletools.genops(data)) else []
'''
SC_EVERY_GLOBAL = IMPORTS + '''
def scan(data, allow):
    return imports(data)   # every import is suspicious
'''
SC_ALWAYS_SAFE = '''
def scan(data, allow):
    return []
'''
SC_ALWAYS_UNSAFE = '''
def scan(data, allow):
    return [("?", "?")]
'''
SC_OWN_ALLOW = IMPORTS + '''
def scan(data, allow):
    return [pair for pair in dict.fromkeys(imports(data)) if pair not in TORCH_ALLOW]   # not the argument
'''
SC_BY_MODULE = IMPORTS + '''
def scan(data, allow):
    modules = {module for module, _ in allow}
    return [(m, n) for m, n in dict.fromkeys(imports(data)) if m not in modules]   # the module alone decides
'''
SC_INVERTED = IMPORTS + '''
def scan(data, allow):
    return [pair for pair in imports(data) if pair in allow]
'''
SC_STRINGS = IMPORTS + '''
def scan(data, allow):
    return [pair for pair in imports(data) if f"{pair[0]}.{pair[1]}" not in allow]   # strings vs pairs
'''
SC_NO_CHECK = IMP_NO_CHECK + '''
def scan(data, allow):
    return [pair for pair in imports(data) if pair not in allow]
'''

SCAN_ZIP_TAIL = '''
def scan_zip(data, allow):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("data is not a zip archive") from None
    return [(m, *pair) for m in archive.namelist() if m.endswith(".pkl") for pair in scan(archive.read(m), allow)]
'''
SZ_FIXED_NAME = SCAN + '''
def scan_zip(data, allow):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("data is not a zip archive") from None
    return [("archive/data.pkl", *pair) for pair in scan(archive.read("archive/data.pkl"), allow)]
'''
SZ_DATA_PKL_ONLY = SCAN + _mutate(SCAN_ZIP_TAIL, ('if m.endswith(".pkl")', 'if m.endswith("/data.pkl")'))
SZ_FIRST_PKL = SCAN + '''
def scan_zip(data, allow):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("data is not a zip archive") from None
    member = next(m for m in archive.namelist() if m.endswith(".pkl"))   # the first pickle only
    return [(member, *pair) for pair in scan(archive.read(member), allow)]
'''
SZ_BASENAME = SCAN + _mutate(SCAN_ZIP_TAIL, ("[(m, *pair)", '[(m.rsplit("/", 1)[-1], *pair)'))
SZ_PAIRS = SCAN + _mutate(SCAN_ZIP_TAIL, ("[(m, *pair)", "[pair"))
SZ_NO_CHECK = SCAN + '''
def scan_zip(data, allow):
    archive = zipfile.ZipFile(io.BytesIO(data))   # BadZipFile is not a ValueError
    return [(m, *pair) for m in archive.namelist() if m.endswith(".pkl") for pair in scan(archive.read(m), allow)]
'''

# (question, code, label): each fails on every seed of SEEDS
WRONG_EVERY_SEED = [
    ("imports", IMP_GLOBAL_ONLY, "imports: GLOBAL only"),
    ("imports", IMP_NO_MEMO, "imports: memo gets ignored"),
    ("imports", IMP_FIRST_STOP, "imports: stops at the first STOP"),
    ("imports", IMP_NO_INST, "imports: INST ignored"),
    ("imports", IMP_SWAPPED, "imports: STACK_GLOBAL operands swapped"),
    ("imports", IMP_SHORT_ONLY, "imports: SHORT_BINUNICODE only"),
    ("imports", IMP_DEDUP, "imports: each import once"),
    ("imports", IMP_NO_CHECK, "imports: truncated input not refused"),
    ("imports", IMP_MEMO_COUNTS_STRINGS, "imports: MEMOIZE slots for strings only"),
    ("imports", IMP_REGEX, "imports: a regular expression for GLOBAL"),
    ("scan", SC_GREP, "scan: grep for b'os'"),
    ("scan", SC_GREP_WORDS, "scan: right only when os/system/exec/eval occur"),
    ("scan", SC_DENY, "scan: a deny-list"),
    ("scan", SC_NO_STACK_GLOBAL, "scan: blind to STACK_GLOBAL"),
    ("scan", SC_NO_MEMO, "scan: memo gets ignored"),
    ("scan", SC_FIRST_STOP, "scan: stops at the first STOP"),
    ("scan", SC_NO_INST, "scan: INST ignored"),
    ("scan", SC_EVERY_REDUCE, "scan: flags every file with a REDUCE"),
    ("scan", SC_EVERY_GLOBAL, "scan: flags every import"),
    ("scan", SC_ALWAYS_SAFE, "scan: always safe"),
    ("scan", SC_ALWAYS_UNSAFE, "scan: always unsafe"),
    ("scan", SC_OWN_ALLOW, "scan: its own allow-list"),
    ("scan", SC_BY_MODULE, "scan: allowed by module"),
    ("scan", SC_INVERTED, "scan: the allowed imports"),
    ("scan", SC_STRINGS, "scan: strings compared with pairs"),
    ("scan", SC_NO_CHECK, "scan: truncated input reported safe"),
    ("scan_zip", SZ_FIXED_NAME, "scan_zip: archive/data.pkl"),
    ("scan_zip", SZ_DATA_PKL_ONLY, "scan_zip: data.pkl only"),
    ("scan_zip", SZ_FIRST_PKL, "scan_zip: the first .pkl only"),
    ("scan_zip", SZ_BASENAME, "scan_zip: member without its folder"),
    ("scan_zip", SZ_PAIRS, "scan_zip: pairs without the member"),
    ("scan_zip", SZ_NO_CHECK, "scan_zip: BadZipFile passed through"),
]


@pytest.mark.parametrize("name, code, label", WRONG_EVERY_SEED, ids=[w[2] for w in WRONG_EVERY_SEED])
def test_a_wrong_answer_fails_on_every_seed(name, code, label):
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    passed = [seed for seed in SEEDS if not fails_quickly(EXERCISE.questions[name], namespace[name], seed)]
    assert not passed, f"{label!r} passes on seeds {passed}"


@pytest.mark.parametrize("name, answer", [("safe_loads", "aegi"), ("safe_loads", "eg"), ("safe_loads", "aegj"),
                                          ("safe_loads", "g"), ("safe_loads", "ag"), ("safe_loads", "bcdfhij")])
def test_a_wrong_statement_set_fails_on_every_seed(name, answer):
    """Signed means safe; torch.load is always unsafe; a deny-list scan suffices; only safetensors; NumPy's default
    unsafe; the complement."""
    assert not any(run_question(EXERCISE.questions[name], lambda: answer, seed=s).passed for s in SEEDS)


def test_the_fast_verdict_is_run_questions(solutions):
    """``fails_quickly`` agrees with ``run_question`` on right and wrong answers."""
    for name, code in [("imports", IMP_NO_MEMO), ("scan", SC_DENY), ("scan_zip", SZ_DATA_PKL_ONLY)]:
        question = EXERCISE.questions[name]
        namespace = _namespace()
        exec(textwrap.dedent(code), namespace)
        for seed in range(2):
            assert fails_quickly(question, namespace[name], seed) == (
                not run_question(question, namespace[name], seed=seed).passed)
            assert not fails_quickly(question, solutions[name], seed)


# (question, code, failing properties (description prefixes; None: at least one), a phrase of the message)
MISTAKES = [
    ("imports", IMP_GLOBAL_ONLY, None, "STACK_GLOBAL is an import too"),
    ("imports", IMP_NO_MEMO, None, "fetched from the memo"),
    ("imports", IMP_FIRST_STOP, ["reads every pickle", "raises a ValueError"], "go on after each STOP"),
    ("imports", IMP_NO_INST, None, "INST imports too"),
    ("imports", IMP_SWAPPED, None, "module is pushed first"),
    ("imports", IMP_SHORT_ONLY, None, "not only SHORT_BINUNICODE"),
    ("imports", IMP_DEDUP, None, "keep repeats"),
    ("imports", IMP_NO_CHECK, ["raises a ValueError"], "data"),
    ("scan", SC_GREP_WORDS, None, "deny-list lets through"),
    ("scan", SC_DENY, None, "deny-list lets through"),
    ("scan", SC_NO_STACK_GLOBAL, None, "STACK_GLOBAL is an import too"),
    ("scan", SC_FIRST_STOP, ["flags INST", "raises a ValueError"], "go on after each STOP"),
    ("scan", SC_EVERY_GLOBAL, None, "that is every import"),
    ("scan", SC_OWN_ALLOW, ["judges by the allow-list"], "passed as allow"),
    ("scan", SC_BY_MODULE, None, "does not allow its whole module"),
    ("scan", SC_NO_CHECK, ["raises a ValueError"], "data"),
    ("scan_zip", SZ_FIXED_NAME, None, "archive/data.pkl"),
    ("scan_zip", SZ_DATA_PKL_ONLY, ["scans every .pkl member"], "every .pkl member can carry a pickle"),
    ("scan_zip", SZ_PAIRS, None, "(member, module, name) triples"),
    ("scan_zip", SZ_NO_CHECK, ["raises a ValueError"], "BadZipFile"),
]


@pytest.mark.parametrize("name, code, failing, message", MISTAKES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_mistake_fails_the_property_written_for_it(name, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("answer", ["", "abcdefghij", "ae", "aeg", "aegb", "aegi", "aegj", "bcd", "xyz"])
def test_statements_earn_full_marks_only_when_exact(answer):
    result = run_question(EXERCISE.questions["safe_loads"], lambda: answer, seed=0)
    assert result.passed == (answer == "aeg"), result.report()
    if answer == "aegi":  # complete but not sound: the message says why i is false
        assert [p.passed for p in result.properties] == [False, True, False]
        assert "signs a malicious file" in result.properties[2].message


def test_the_notebook_states_the_statements_the_checks_grade():
    """Each statement's text in the source notebook is the one ``safe_loads`` grades (Markdown aside)."""
    assert_notebook_states(SOURCE, ch15.STATEMENTS)


# ---- the instances keep the promises the every-seed guarantees rest on ----------------------------------------
def test_the_instances_keep_their_promises():
    for seed in range(120):
        rng = torch.Generator().manual_seed(seed)
        for protocol in (4, 5):  # a CNN's state dict fetches "torch" back from the memo for its LongStorage
            data = ch15._cnn_pkl(rng, protocol)
            assert ch15._walk(data, memo=False) != ch15._walk(data)
            assert not ch15._reference_scan(data, ch15.TORCH_ALLOW)
        obj = pickle.dumps(P.benign_object(rng), protocol=4)  # two classes of one module: memo
        assert ch15._walk(obj, memo=False) != ch15._walk(obj)
        memo = P.handmade_call(rng, "memo", target=ch15._opener(rng), marker=ch15._marker(rng))
        assert ch15._walk(memo, memo=False) != ch15._walk(memo)
        inst = P.handmade_call(rng, "inst", target=ch15._opener(rng), marker=ch15._marker(rng))
        assert ch15._walk(inst, inst=False) == [] and len(ch15._walk(inst)) == 1
        stack = ch15._stack_global_pickle(rng)
        assert ch15._walk(stack, any_string=False) != ch15._walk(stack)
        data, _ = ch15._concatenated(rng)
        whole, first = ch15._walk(data), ch15._walk(data, every_pickle=False)
        assert len(whole) > len(first) and set(whole[len(first):]) - ch15.TORCH_ALLOW
        for data, _ in ch15._deny_list_misses(rng):
            assert not any(word in data for word in ch15.GREP_WORDS)
            (pair,) = ch15._walk(data)
            assert pair in P.OPENERS and pair[0] not in ch15.DENY_MODULES
        archive = P.archive_name(rng)
        assert archive != "archive" and re.fullmatch(r"[a-z]+_\d+", archive)
        for pair in ch15._walk(stack) + ch15._walk(memo):
            assert pair[0] != pair[1]


def test_every_payload_format_reaches_the_scan_checks():
    """The kit's payloads in each format hold an import outside the allow-list, at protocol >= 4 for joblib and npy
    (so a scanner blind to STACK_GLOBAL misses them)."""
    rng = torch.Generator().manual_seed(0)
    for technique in sc.TECHNIQUES:
        for fmt in ("pickle", "joblib", "torch", "npy"):
            data = P.kit_payload_pickle(rng, technique, fmt)
            assert ch15._reference_scan(data, ch15.TORCH_ALLOW), (technique, fmt)
            if fmt in ("joblib", "npy"):
                assert data[:2] in (b"\x80\x04", b"\x80\x05") and not ch15._outside(
                    ch15._walk(data, stack_global=False), ch15.TORCH_ALLOW)


# ---- the reference is right, and nothing is unpickled ------------------------------------------------------------
def test_the_reference_imports_are_the_unpicklers_and_the_kits():
    """On every kind of file the checks draw, the reference lists exactly the imports Python's own unpickler asks
    ``find_class`` for (run with every import stubbed out), in order, and the kit's scanner sees the same set."""
    makers = {
        "objects": lambda r: pickle.dumps(P.benign_object(r), protocol=int(torch.randint(0, 6, (1,), generator=r))),
        "state dict": lambda r: ch15._any_pkl(r, int(torch.randint(2, 6, (1,), generator=r))),
        "cnn": lambda r: ch15._cnn_pkl(r, 5),
        "mixed": ch15._mixed_pkl,
        "kit": lambda r: P.kit_payload_pickle(r, ch15._technique(r), ("pickle", "joblib", "torch", "npy")[
            int(torch.randint(0, 4, (1,), generator=r))]),
        "inst": lambda r: P.handmade_call(r, "inst", target=ch15._opener(r), marker=ch15._marker(r)),
        "global": lambda r: P.handmade_call(r, "global", target=ch15._opener(r), marker=ch15._marker(r)),
        "stack_global": ch15._stack_global_pickle,
        "memo": lambda r: P.handmade_call(r, "memo", target=ch15._opener(r), marker=ch15._marker(r)),
        "concatenated": lambda r: ch15._concatenated(r)[0],
    }
    for seed in range(40):
        rng = torch.Generator().manual_seed(seed)
        for kind, make in makers.items():
            data = make(rng)
            assert ch15._walk(data) == unpickler_imports(data), (seed, kind)
            assert set(sc.pickle_globals(data)) == {".".join(ch15._canon(p)) for p in ch15._walk(data)}, (seed, kind)


def test_the_allow_list_is_the_kits_and_torchs():
    """TORCH_ALLOW is within the kit's DEFAULT_ALLOW, and every state dict the checks call benign loads with
    torch.load(weights_only=True)."""
    assert ch15.TORCH_ALLOW <= sc.DEFAULT_ALLOW
    rng = torch.Generator().manual_seed(0)
    for kind in P.MODEL_KINDS:  # protocol 2, torch.save's default (its weights-only unpickler refuses FRAME, 4+)
        blob = P.torch_zip(P.state_dict(rng, kind), archive=P.archive_name(rng), protocol=2)
        assert ch15._reference_scan_zip(blob, ch15.TORCH_ALLOW) == []
        loaded = torch.load(io.BytesIO(blob), weights_only=True)
        assert set(loaded) and all(isinstance(v, torch.Tensor) for v in loaded.values())


def test_grading_never_unpickles(tmp_path):
    """A whole grading pass of every question, in a child process whose audit hook records every import an
    unpickler asks for (PEP 578's ``pickle.find_class``): none."""
    script = textwrap.dedent('''
        import sys
        seen = []
        sys.addaudithook(lambda event, args: seen.append(args) if event == "pickle.find_class" else None)
        from mlsec_kit.grading import get_exercise, run_question
        from mlsec_kit.grading.sets import ch15
        exercise = get_exercise("15_supply_chain")
        refs = {"imports": ch15._reference_imports, "scan": ch15._reference_scan,
                "scan_zip": ch15._reference_scan_zip, "safe_loads": lambda: "aeg"}
        for seed in range(2):
            for name, question in exercise.questions.items():
                assert run_question(question, refs[name], seed=seed).passed, name
        print("find_class calls:", len(seen), seen[:3])
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "find_class calls: 0 []" in done.stdout


_LOAD_CHILD = textwrap.dedent('''
    import builtins, codecs, io, json, logging, os, pickle, sys, zipfile
    import numpy
    paths = json.loads(sys.argv[1])
    events = []
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def hook(event, args):
        if event == "open":
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE):
                events.append(["open", str(args[0])])
        elif event in ("exec", "compile", "import", "os.system", "subprocess.Popen", "os.remove", "os.unlink",
                       "os.rmdir", "os.rename", "shutil.rmtree", "socket.connect", "socket.__new__", "os.exec",
                       "os.posix_spawn", "os.fork", "ctypes.dlopen", "webbrowser.open"):
            events.append([event, str(args[0])[:200] if args else ""])
    out = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        sys.addaudithook(hook) if not out else None
        events.clear()
        pickle.loads(data)
        out.append(list(events))
    sys.stdout.write("@@" + json.dumps(out))
''')


def test_a_handmade_pickle_only_creates_its_marker(tmp_path):
    """SAFETY: each hand-written call, in each style, for each opener, loaded for real with pickle.loads in a child
    process (its modules imported beforehand), creates its marker and nothing else: by the child's audit events
    (PEP 578), the only file opened for writing is the marker, and nothing is compiled, executed, imported, started,
    deleted or connected; and the folder then holds exactly the pickles and their markers."""
    import os

    rng = torch.Generator().manual_seed(0)
    paths, markers = [], []
    for style in ("global", "inst", "stack_global", "memo"):
        for i, target in enumerate(P.OPENERS):
            marker = tmp_path / f"{style}-{i}.npy"
            path = tmp_path / f"{style}-{i}.pkl"
            path.write_bytes(P.handmade_call(rng, style, target=target, marker=str(marker)))
            paths.append(path)
            markers.append(marker)
    done = subprocess.run([sys.executable, "-c", _LOAD_CHILD, json.dumps([str(p) for p in paths])],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "@@" in done.stdout, done.stderr
    for path, marker, events in zip(paths, markers, json.loads(done.stdout.split("@@", 1)[1])):
        assert events and all(e == ["open", str(marker)] for e in events), (path.name, events)
        assert marker.is_file(), path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paths] + [m.name for m in markers])


def _picklescan_scan(data, allow):
    """An answer that hands the walk to picklescan (a review found it passing ``scan`` on 9 of 10 seeds)."""
    from picklescan.scanner import _list_globals

    for _ in pickletools.genops(io.BytesIO(data)):   # truncated input raises ValueError, as the question asks
        pass
    return sorted(set(_list_globals(io.BytesIO(data))) - {tuple(p) for p in allow})


def test_an_answer_built_on_picklescan_is_blocked_while_grading():
    pytest.importorskip("picklescan")
    assert "picklescan.scanner._list_globals" in EXERCISE.questions["scan"].forbid
    result = run_blocked(EXERCISE.questions["scan"], _picklescan_scan, seed=1)
    assert not result.passed and "a library's answer" in result.report()


def test_forbid_names_a_dotted_function_path():
    from mlsec_kit.grading.core import Question

    Question("15_supply_chain", "f", "f()", forbid=("picklescan.scanner._list_globals", "mlsec_kit.dp.laplace"))
    for bad in ("picklescan", "mlsec_kit.x", "a..b", "pickle scan.x", 3):
        with pytest.raises(ValueError, match="forbid must name functions"):
            Question("15_supply_chain", "f", "f()", forbid=(bad,))
