"""The chapter-12 checks (a linear layer and a polynomial computed by the server on CKKS ciphertexts, CKKS
parameters for a depth, who learns what): every reference solution passes on any seed, correct answers written
differently pass too, and each plausible wrong answer fails, on every one of many seeds, with a message that says
what to fix. The server's functions get only bytes: the public context (no secret key) and a ciphertext."""
import math
import textwrap

import pytest
import torch

pytest.importorskip("tenseal")

import tenseal as ts  # noqa: E402

from grading_helpers import (ROOT, assert_blank_scores_nothing, assert_fails_on_every_seed,  # noqa: E402
                             assert_forbidden_names_resolve, assert_mistake_fails, assert_passes_on_seeds,
                             assert_set_runs_quickly, fails_quickly, run_blocked, solution_functions)
from mlsec_kit.crypto import he  # noqa: E402
from mlsec_kit.grading import get_exercise, run_question  # noqa: E402
from mlsec_kit.grading.sets import ch12  # noqa: E402

EXERCISE_ID = "12_homomorphic_encryption"
EXERCISE = get_exercise(EXERCISE_ID)
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("server_linear", "server_poly", "choose_parameters", "he_statements")
SEEDS = range(1200, 1220)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module", autouse=True)
def _reuse_deserialised_contexts():
    """Speed only: ``ts.context_from`` returns the context it already read from the same bytes (the grader's
    contexts are cached, so every call hands over the same public bytes; deserialising Galois keys is most of a
    check's time). The student's code and the verdicts are unchanged: the server's functions only read it."""
    real = ts.context_from
    seen: dict = {}

    def context_from(data, *args, **kwargs):
        if args or kwargs or not isinstance(data, bytes):
            return real(data, *args, **kwargs)
        key = (len(data), hash(data))
        if key not in seen:
            seen[key] = real(data)
        return seen[key]

    ts.context_from = context_from
    yield
    ts.context_from = real


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the four functions (not the real-data cell)."""
    return solution_functions(SOURCE, QUESTIONS)


def _namespace() -> dict:
    return {"torch": torch, "math": math, "ts": ts, "he": he}


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: homomorphic encryption" and EXERCISE.chapter == 12
    assert EXERCISE.extras == ("tenseal",)  # the Gradescope setup installs mlsec-kit[tenseal]
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.crypto.he.Server.matmul", "mlsec_kit.crypto.he.Server.dot"} <= forbid["server_linear"]
    assert {"mlsec_kit.crypto.he.Server.polyval", "mlsec_kit.crypto.he.Server.multiply"} <= forbid["server_poly"]
    assert {"mlsec_kit.crypto.he.ckks_chain", "mlsec_kit.crypto.he.ckks_context"} <= forbid["choose_parameters"]
    assert "mlsec_kit.grading.sets.ch12._reference_parameters" in forbid["choose_parameters"]


def test_the_source_notebook_mentions_its_chapter():
    text = SOURCE.read_text(encoding="utf-8")
    assert "chapter 12" in text.lower() and "mlsec-kit[tenseal] @ git+" in text


# ---- the server's functions get bytes only, and no secret key ----------------------------------------------
def test_the_server_gets_only_a_public_context_and_bytes():
    seen = []

    def spy(public_context, x_ct, weight, bias):
        seen.append((public_context, x_ct, weight, bias))
        ctx = ts.context_from(public_context)
        assert not ctx.is_private()  # no secret key crossed
        x = ts.ckks_vector_from(ctx, x_ct)
        with pytest.raises(ValueError, match="secret"):
            x.decrypt()
        return (x.mm(weight.T.tolist()) + bias.tolist()).serialize()

    assert run_question(EXERCISE.questions["server_linear"], spy, seed=0).score >= 3
    assert seen and all(type(p) is bytes and type(c) is bytes for p, c, _, _ in seen)
    assert all(isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor) for _, _, w, b in seen)


# ---- answers built on the kit: they pass unblocked, and earn nothing of value once the grader blocks them ----
def _kit_linear(public_context, x_ct, weight, bias):
    server = he.Server(public_context)
    x = server.receive(x_ct)
    m, n = weight.shape
    if n != x.size():
        raise ValueError("weight has the wrong number of columns")
    if tuple(bias.shape) != (m,):
        raise ValueError("bias has the wrong shape")
    return server.send(server.add(server.matmul(x, weight.T), bias))


def _kit_poly(public_context, x_ct, coeffs):
    if not len(coeffs):
        raise ValueError("coeffs is empty")
    server = he.Server(public_context)
    x = server.receive(x_ct)
    try:
        return server.send(server.polyval(x, coeffs))
    except ValueError as err:
        raise ValueError(f"coeffs: {err}") from None


def _kit_parameters(depth, scale_bits):
    if depth < 1:
        raise ValueError("depth must be >= 1")
    if not 25 <= scale_bits <= 50:
        raise ValueError("scale_bits out of range")
    chain = [scale_bits + 10] + he.ckks_chain(depth=depth, scale_bits=scale_bits)[1:-1] + [scale_bits + 10]
    for n, bound in sorted(he.HE_STANDARD_MAX_LOGQ[128].items()):
        if sum(chain) <= bound:
            return n, chain
    raise ValueError("depth too large")


def _checker_parameters(depth, scale_bits):
    if depth < 1 or ch12._smallest_degree(depth, scale_bits) is None:
        raise ValueError("depth out of range")
    if not 25 <= scale_bits <= 50:
        raise ValueError("scale_bits out of range")
    return ch12._reference_parameters(depth, scale_bits)


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers lose the value checks."""
    assert_forbidden_names_resolve(EXERCISE)
    for name, fn in [("server_linear", _kit_linear), ("server_poly", _kit_poly),
                     ("choose_parameters", _kit_parameters), ("choose_parameters", _checker_parameters)]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
        result = run_blocked(question, fn)
        # only the checks of bad input, which never reach the kit, may still pass
        assert result.score <= 1, result.report()


# ---- the reference solutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=15)


def test_a_blank_notebook_scores_nothing():
    assert_blank_scores_nothing(EXERCISE)


CORRECT_VARIANTS = """
def linear_encrypted_bias(public_context, x_ct, weight, bias):
    # the bias encrypted with the public key and added as a ciphertext: a ciphertext-ciphertext addition
    ctx = ts.context_from(public_context)
    x = ts.ckks_vector_from(ctx, x_ct)
    m, n = weight.shape
    if n != x.size():
        raise ValueError("weight: wrong number of columns")
    if len(bias) != m:
        raise ValueError("bias: wrong length")
    return (x.mm(weight.T.tolist()) + ts.ckks_vector(ctx, bias.tolist())).serialize()

def linear_matmul(public_context, x_ct, weight, bias):
    ctx = ts.context_from(public_context)
    x = ts.ckks_vector_from(ctx, x_ct)
    if weight.shape[1] != x.size():
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {x.size()} values")
    if bias.shape != weight.shape[:1]:
        raise ValueError(f"bias {tuple(bias.shape)} does not fit the weight")
    y = x.matmul(weight.T.numpy().tolist())
    y.add_(bias.numpy().tolist())
    return bytearray(y.serialize())

def poly_balanced(public_context, x_ct, coeffs):
    # the depth-optimal evaluation by hand for degree <= 3: x^2 once, then c0 + c1 x + (c2 + c3 x) x^2
    if not coeffs:
        raise ValueError("coeffs is empty")
    if len(coeffs) > 4:
        raise ValueError(f"coeffs of degree {len(coeffs) - 1} need more than the 2 levels available")
    ctx = ts.context_from(public_context)
    x = ts.ckks_vector_from(ctx, x_ct)
    c = list(coeffs) + [0.0] * (4 - len(coeffs))
    x2 = x * x
    out = x * c[1] + c[0]
    if c[2] or c[3]:
        out = out + (x * c[3] + c[2]) * x2
    return out.serialize()

def parameters_loop(depth, scale_bits):
    if depth < 1:
        raise ValueError("depth must be >= 1")
    if scale_bits < 25 or scale_bits > 50:
        raise ValueError("scale_bits must be in [25, 50]")
    need = (depth + 2) * scale_bits + 20
    for n in (1024, 2048, 4096, 8192, 16384, 32768):
        if need <= he.HE_STANDARD_MAX_LOGQ[128][n]:
            # an extra level is allowed when it still fits the same N
            chain = [scale_bits + 10] + [scale_bits] * depth + [scale_bits + 10]
            return n, tuple(chain)
    raise ValueError(f"depth {depth} is too deep for any N at scale_bits {scale_bits}")

def parameters_wide_special(depth, scale_bits):
    # a larger special prime and first prime are fine while the same N stays secure
    if depth < 1:
        raise ValueError("depth must be >= 1")
    if not 25 <= scale_bits <= 50:
        raise ValueError("scale_bits must be in [25, 50]")
    need = (depth + 2) * scale_bits + 20
    n = next((n for n, b in sorted(he.HE_STANDARD_MAX_LOGQ[128].items()) if need <= b), None)
    if n is None:
        raise ValueError("depth: too deep")
    spare = he.HE_STANDARD_MAX_LOGQ[128][n] - need
    extra = min(spare // 2, 50 - scale_bits)
    return n, [scale_bits + 10 + extra] + [scale_bits] * depth + [scale_bits + 10 + extra]

def statements_spaced():
    return "b, D; f"
"""


def test_differently_built_correct_answers_pass():
    """The bias encrypted with the public key, matmul with add_ and a bytearray, a hand-made depth-2 polynomial,
    a tuple chain, wider outer primes that still fit, letters with separators: all earn full marks."""
    namespace = _namespace()
    exec(textwrap.dedent(CORRECT_VARIANTS), namespace)
    for name, fn in [("server_linear", "linear_matmul"), ("server_linear", "linear_encrypted_bias"),
                     ("server_poly", "poly_balanced"),
                     ("choose_parameters", "parameters_loop"), ("choose_parameters", "parameters_wide_special"),
                     ("he_statements", "statements_spaced")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(6))


# ---- typical mistakes: each fails the property written for it, with a message that names the fix ----------------
_LINEAR_HEAD = """
    def server_linear(public_context, x_ct, weight, bias):
        ctx = ts.context_from(public_context)
        x = ts.ckks_vector_from(ctx, x_ct)
        m, n = weight.shape
        if n != x.size():
            raise ValueError(f"weight must have {x.size()} columns")
        if len(bias) != m:
            raise ValueError(f"bias must have {m} entries")
"""


def _linear(body: str) -> str:
    return _LINEAR_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


LIN_ZEROS = _linear("return ts.ckks_vector(ctx, [0.0] * m).serialize()")
LIN_NO_BIAS = _linear("return x.mm(weight.T.tolist()).serialize()")
LIN_MINUS_BIAS = _linear("return (x.mm(weight.T.tolist()) - bias.tolist()).serialize()")
LIN_BIAS_ONLY = _linear("return ts.ckks_vector(ctx, bias.tolist()).serialize()")
LIN_TRANSPOSED = _linear("return (x.mm(weight.tolist()) + bias.tolist()).serialize()")
LIN_INPUT = _linear("return x_ct")
LIN_OBJECT = _linear("return x.mm(weight.T.tolist()) + bias.tolist()")
LIN_GARBAGE = _linear("return b'not a ciphertext'")
LIN_DECRYPT = _linear("""
plain = torch.tensor(x.decrypt(), dtype=torch.float64)   # the server holds no secret key
return ts.ckks_vector(ctx, (weight @ plain + bias).tolist()).serialize()""")
LIN_FIRST_ROW = _linear("return (x.dot(weight[0].tolist()) + float(bias[0])).serialize()")
LIN_OWN_CONTEXT = _linear("""
own = ts.context(ts.SCHEME_TYPE.CKKS, 4096, coeff_mod_bit_sizes=[40, 29, 40])
own.global_scale = 2 ** 29
return ts.ckks_vector(own, bias.tolist()).serialize()""")
LIN_PLAINTEXT_LIST = _linear("return (weight @ torch.zeros(n, dtype=torch.float64) + bias).tolist()")

_POLY_HEAD = """
    def server_poly(public_context, x_ct, coeffs):
        ctx = ts.context_from(public_context)
        x = ts.ckks_vector_from(ctx, x_ct)
        if not len(coeffs) or he.polyval_depth(len(coeffs) - 1) > he.depth_left(x):
            raise ValueError("coeffs: empty, or too many levels")
"""


def _poly(body: str) -> str:
    return _POLY_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


POLY_REVERSED = _poly("return x.polyval(list(coeffs)[::-1]).serialize()")
POLY_NO_CONSTANT = _poly("return (x.polyval(list(coeffs)) - coeffs[0]).serialize()")
POLY_SHIFTED = _poly("return x.polyval([0.0] + list(coeffs)).serialize()")
POLY_SQUARE = _poly("return (x * x).serialize()")
POLY_INPUT = _poly("return x_ct")
POLY_ZEROS = _poly("return (x * 0.0).serialize()")
POLY_HORNER = _poly("""
acc = x * coeffs[-1] + coeffs[-2]
for c in reversed(coeffs[:-2]):
    acc = acc * x + c
return acc.serialize()""")
POLY_LEADING = _poly("return (x.pow(len(coeffs) - 1) * coeffs[-1]).serialize()")

_PARAM_HEAD = """
    def choose_parameters(depth, scale_bits):
        s = scale_bits
        if depth < 1 or (depth + 2) * s + 20 > 881:
            raise ValueError(f"depth {depth} out of range")
        if not 25 <= s <= 50:
            raise ValueError(f"scale_bits {s} out of range")
        minimal = [s + 10] + [s] * depth + [s + 10]
        def smallest(chain, table=he.HE_STANDARD_MAX_LOGQ[128]):
            return next(n for n, b in sorted(table.items()) if sum(chain) <= b)
"""


def _param(body: str) -> str:
    return _PARAM_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


PAR_SHORT = _param("chain = [s + 10] + [s] * (depth - 1) + [s + 10]\nreturn smallest(chain), chain")
PAR_NO_SPECIAL = _param("chain = [s + 10] + [s] * depth\nreturn smallest(chain), chain")
PAR_SIXTY_FORTY = _param("return 8192, [60] + [40] * depth + [60]")
PAR_SIXTY_S_8192 = _param("return 8192, [60] + [s] * depth + [60]")
PAR_SIXTY_S_SMALLEST = _param("chain = [60] + [s] * depth + [60]\nreturn smallest(chain), chain")
PAR_N_8192 = _param("return 8192, minimal")
PAR_N_16384 = _param("return 16384, minimal")
PAR_N_BY_DEPTH = _param("return (4096 if depth <= 2 else 8192), minimal")
PAR_N_LOOKUP = _param("return {1: 4096, 2: 8192, 3: 8192, 4: 8192}.get(depth, 16384), minimal")  # the review's
PAR_192 = _param("return smallest(minimal, he.HE_STANDARD_MAX_LOGQ[192]), minimal")
PAR_STRICT = _param("""
return next(n for n, b in sorted(he.HE_STANDARD_MAX_LOGQ[128].items()) if sum(minimal) < b), minimal""")
PAR_FORTY = _param("chain = [s + 10] + [40] * depth + [s + 10]\nreturn smallest(chain), chain")
PAR_ALL_WIDE = _param("chain = [s + 10] * (depth + 2)\nreturn smallest(chain), chain")
PAR_NO_HEADROOM = _param("chain = [s] * (depth + 2)\nreturn smallest(chain), chain")
PAR_SMALL_SPECIAL = _param("chain = [s + 10] + [s] * depth + [s]\nreturn smallest(chain), chain")
PAR_KIT_CONVENTION = _param("chain = [s + 20] + [s] * depth + [s + 20]\nreturn smallest(chain), chain")
PAR_MIDDLE_FIRST = _param("chain = [s + 10] + [s + 10] + [s] * (depth - 1) + [s + 10]\nreturn smallest(chain), chain")

MISTAKES = [
    ("server_linear", "zeros", LIN_ZEROS, ["decrypts to", "handles one"], "zeros"),
    ("server_linear", "no bias", LIN_NO_BIAS, ["decrypts to", "handles one"], "without the bias"),
    ("server_linear", "transposed weight", LIN_TRANSPOSED, None, "doesn't match"),
    ("server_linear", "input returned", LIN_INPUT, None, "values; expected"),
    ("server_linear", "CKKSVector object", LIN_OBJECT, None, "result.serialize()"),
    ("server_linear", "bytes that do not parse", LIN_GARBAGE, None, "not a CKKS ciphertext"),
    ("server_linear", "decrypts on the server", LIN_DECRYPT, None, "secret_key"),
    ("server_linear", "plaintext list", LIN_PLAINTEXT_LIST, None, "decrypting is the client's job"),
    ("server_poly", "reversed coefficients", POLY_REVERSED, None, "highest degree first"),
    ("server_poly", "no constant", POLY_NO_CONSTANT, None, "without its constant term"),
    ("server_poly", "Horner's rule", POLY_HORNER, ["decrypts to a degree-3"], "ran out of levels"),
    ("choose_parameters", "one level short", PAR_SHORT, None, "one short"),
    ("choose_parameters", "[60, 40, ..., 60] at 8192", PAR_SIXTY_FORTY, None, "HE Standard allows"),
    ("choose_parameters", "N from the 192-bit table", PAR_192, ["uses the smallest", "builds"], "fits N = "),
    ("choose_parameters", "strict < against the bound", PAR_STRICT, ["uses the smallest"], "inclusive"),
    ("choose_parameters", "40-bit rescale primes", PAR_FORTY, None, "scale_bits ="),
    ("choose_parameters", "no headroom", PAR_NO_HEADROOM, None, "integer part"),
    ("choose_parameters", "small special prime", PAR_SMALL_SPECIAL, ["keeps the precision"],
     "key switching"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


WRONG_EVERY_SEED = [
    ("server_linear", LIN_ZEROS, "an encryption of zeros"),
    ("server_linear", LIN_NO_BIAS, "the bias forgotten"),
    ("server_linear", LIN_MINUS_BIAS, "the bias subtracted"),
    ("server_linear", LIN_BIAS_ONLY, "an encryption of the bias alone"),
    ("server_linear", LIN_TRANSPOSED, "the weight transposed"),
    ("server_linear", LIN_INPUT, "the input ciphertext returned"),
    ("server_linear", LIN_OBJECT, "a CKKSVector, not bytes"),
    ("server_linear", LIN_GARBAGE, "bytes that are not a ciphertext"),
    ("server_linear", LIN_DECRYPT, "decrypting on the server"),
    ("server_linear", LIN_FIRST_ROW, "only the first output"),
    ("server_linear", LIN_OWN_CONTEXT, "a ciphertext of another context"),
    ("server_linear", LIN_PLAINTEXT_LIST, "plaintext values, not a ciphertext"),
    ("server_poly", POLY_REVERSED, "coefficients highest degree first"),
    ("server_poly", POLY_NO_CONSTANT, "the constant term forgotten"),
    ("server_poly", POLY_SHIFTED, "every term one degree too high"),
    ("server_poly", POLY_SQUARE, "x^2 whatever the coefficients"),
    ("server_poly", POLY_INPUT, "the input ciphertext returned"),
    ("server_poly", POLY_ZEROS, "an encryption of zeros"),
    ("server_poly", POLY_HORNER, "Horner's rule (one level per degree)"),
    ("server_poly", POLY_LEADING, "the leading term alone"),
    ("choose_parameters", PAR_SHORT, "a chain one level short"),
    ("choose_parameters", PAR_NO_SPECIAL, "no special prime"),
    ("choose_parameters", PAR_SIXTY_FORTY, "[60, 40, ..., 40, 60] at N = 8192"),
    ("choose_parameters", PAR_SIXTY_S_8192, "[60, s, ..., s, 60] at N = 8192"),
    ("choose_parameters", PAR_SIXTY_S_SMALLEST, "[60, s, ..., s, 60] at the smallest N it fits"),
    ("choose_parameters", PAR_N_8192, "N = 8192 whatever the chain"),
    ("choose_parameters", PAR_N_16384, "N = 16384 whatever the chain"),
    ("choose_parameters", PAR_N_BY_DEPTH, "N chosen by the depth, without the security bound"),
    ("choose_parameters", PAR_N_LOOKUP, "N looked up from the depth alone (right for some scales)"),
    ("choose_parameters", PAR_192, "N from the 192-bit column"),
    ("choose_parameters", PAR_STRICT, "a strict < against the bound"),
    ("choose_parameters", PAR_FORTY, "40-bit rescale primes whatever scale_bits is"),
    ("choose_parameters", PAR_ALL_WIDE, "every prime of s + 10 bits"),
    ("choose_parameters", PAR_NO_HEADROOM, "a first prime of s bits"),
    ("choose_parameters", PAR_SMALL_SPECIAL, "a special prime smaller than the first"),
    ("choose_parameters", PAR_KIT_CONVENTION, "outer primes of s + 20 bits (the kit's ckks_chain)"),
]


_fails = fails_quickly  # the same verdict as run_question, in less time (grading_helpers)


def _assert_fails_on_every_seed(question, code: str, name: str, seeds, label: str) -> None:
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    passed = [seed for seed in seeds if not _fails(question, namespace[name], seed)]
    assert not passed, f"{label!r} passes on seeds {passed}"


@pytest.mark.parametrize("name, code, label", WRONG_EVERY_SEED, ids=[w[2] for w in WRONG_EVERY_SEED])
def test_a_wrong_answer_fails_on_every_seed(name, code, label):
    _assert_fails_on_every_seed(EXERCISE.questions[name], code, name, SEEDS, label)


def test_the_fast_verdict_is_run_questions(solutions):
    """``_fails`` agrees with ``run_question`` (and the shared helper) on right and wrong answers."""
    for name, code in [("server_linear", LIN_NO_BIAS), ("server_poly", POLY_HORNER),
                       ("choose_parameters", PAR_KIT_CONVENTION)]:
        question = EXERCISE.questions[name]
        namespace = _namespace()
        exec(textwrap.dedent(code), namespace)
        for seed in range(2):
            assert _fails(question, namespace[name], seed) == (not run_question(question, namespace[name],
                                                                                seed=seed).passed)
            assert not _fails(question, solutions[name], seed)
        assert_fails_on_every_seed(question, code, name, _namespace(), range(2), name)


def test_a_chain_with_an_extra_first_level_passes():
    """A spare level at the front (not dropped by the depth rescales) is allowed while the same N stays secure."""
    code = _param("""
    if depth < 1 or not 25 <= s <= 50:
        raise ValueError("depth or scale_bits out of range")
    n = smallest(minimal) if (depth + 2) * s + 20 <= 881 else None
    if n is None:
        raise ValueError("depth: too deep")
    extra = [s + 10, 20] + [s] * depth + [s + 10]
    return (n, extra) if sum(extra) <= he.HE_STANDARD_MAX_LOGQ[128][n] else (n, minimal)""")
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    assert_passes_on_seeds(EXERCISE.questions["choose_parameters"], namespace["choose_parameters"], range(4))
    # but a first prime of s + 10 moved behind an extra level is one rescale prime that does not match s
    _assert_fails_on_every_seed(EXERCISE.questions["choose_parameters"], PAR_MIDDLE_FIRST, "choose_parameters",
                                SEEDS, "an s + 10 prime among the rescale primes")


@pytest.mark.parametrize("answer", ["", "abcdefghi", "bd", "bdf", "bdfh", "bdfi", "a", "xyz"])
def test_statements_earn_full_marks_only_when_exact(answer):
    result = run_question(EXERCISE.questions["he_statements"], lambda: answer, seed=0)
    assert result.passed == (answer == "bdf"), result.report()
    if answer == "bdfh":  # complete but not sound: the message says why h is false
        assert [p.passed for p in result.properties] == [False, True, False]
        assert "integrity" in result.properties[2].message
    if answer == "bdfi":
        assert "circuit privacy" in result.properties[2].message


# ---- the instances keep the promises the every-seed guarantees rest on ----------------------------------------
def test_the_instances_keep_their_promises():
    table = he.HE_STANDARD_MAX_LOGQ[128]
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        inst = ch12._linear_instance(rng)
        m, n = inst["w"].shape
        assert m != n and m >= 2 and bool((inst["b"].abs() >= 0.5).all())
        assert float((inst["w"] @ inst["x"]).abs().max()) >= 0.5
        for params in ch12.LINEAR_CONTEXTS:  # the tolerance is far below every named mistake's error (0.5)
            assert float(ch12._linear_tolerance(ch12._client(*params, galois=True), inst).max()) < 0.05
        for degree in (2, 3):
            coeffs, x = ch12._poly_instance(rng, degree)
            ref = ch12._reference_poly(coeffs, x)
            assert len(coeffs) == degree + 1
            assert all(float((alt - ref).abs().max()) >= 0.2
                       for alt in ch12._poly_alternatives(coeffs, x).values())
        kinds = {}
        for depth, s, kind in ch12._parameter_instances(rng):
            kinds[kind] = (depth, s)
            n_min, cheapest = ch12._reference_parameters(depth, s)
            assert sum(cheapest) <= table[n_min] and all(sum(cheapest) > table[k] for k in table if k < n_min)
        (_, sa), (db, sb), (dc, sc) = kinds["A"], kinds["B"], kinds["C"]
        assert ch12._smallest_degree(1, sa) == 4096 and 3 * sa + 40 > table[4096] and 3 * sa + 20 > 75
        assert ch12._smallest_degree(db, sb) == 8192 and 120 + db * sb > table[8192] and sb != 40
        assert ch12._smallest_degree(dc, sc) == 16384
        assert kinds["edge"] == (4, 33) and 6 * 33 + 20 == table[8192]


def test_the_reference_answers_agree_with_the_kit():
    """The reference chain is accepted by the kit's checker at the reference N and refused one degree below; the
    reference layer and polynomial agree with TenSEAL's computation decrypted by the client."""
    from mlsec_kit.crypto.he.params import POLY_MODULUS_DEGREES

    for depth in range(1, 9):
        for s in (20, 29, 33, 40, 50):
            n, chain = ch12._reference_parameters(depth, s)
            if n is None:
                continue
            he.check_parameters(n, chain)
            smaller = POLY_MODULUS_DEGREES[POLY_MODULUS_DEGREES.index(n) - 1] if n > 1024 else None
            if smaller:
                with pytest.raises(ValueError, match="insecure"):
                    he.check_parameters(smaller, chain)
    client = ch12._client(*ch12.LINEAR_CONTEXTS[0], galois=True)
    inst = ch12._linear_instance(torch.Generator().manual_seed(0))
    y = ts.ckks_vector_from(client.context, client.encrypt(inst["x"])).mm(inst["w"].T.tolist())
    got = torch.tensor(y.decrypt(), dtype=torch.float64) + inst["b"]
    assert torch.allclose(got, ch12._reference_linear(inst["w"], inst["x"], inst["b"]), atol=1e-2)


def test_a_built_context_is_secure_and_holds_no_secret_key_in_its_public_bytes():
    for params, galois in [(ch12.LINEAR_CONTEXTS[0], True), (ch12.LINEAR_CONTEXTS[1], True),
                           (ch12.POLY_CONTEXT, False)]:
        client = ch12._client(*params, galois=galois)
        public = ts.context_from(client.public)
        assert not public.is_private() and public.has_galois_keys() == galois
        assert sum(params[1]) <= he.HE_STANDARD_MAX_LOGQ[128][params[0]]
    with pytest.raises(ValueError, match="insecure"):
        ch12._client(8192, (60, 40, 40, 40, 60), 40, galois=False)


def test_the_notebook_states_the_statements_the_checks_grade():
    """Each statement's text in the source notebook is the one ``he_statements`` grades (Markdown and math aside)."""
    import json
    import re

    cells = [("".join(c["source"]), c["cell_type"]) for c in json.loads(SOURCE.read_text(encoding="utf-8"))["cells"]]
    markdown = next(source for source, kind in cells if kind == "markdown" and "**a.**" in source)

    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    bullets = dict(re.findall(r"\* \*\*([a-z])\.\*\* (.*?)(?=\n\* \*\*|\Z)", markdown, re.S))
    assert set(bullets) == set(ch12.STATEMENTS)
    for letter, statement in ch12.STATEMENTS.items():
        assert norm(bullets[letter]) == norm(statement), letter
