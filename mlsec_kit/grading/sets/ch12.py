"""Checks of the chapter-12 exercise set: a linear layer and a polynomial activation computed by the *server* on
CKKS ciphertexts, the choice of CKKS parameters for a multiplicative depth, and who learns what.

Student functions: ``server_linear(public_context, x_ct, weight, bias) -> bytes``, ``server_poly(public_context,
x_ct, coeffs) -> bytes``, ``choose_parameters(depth, scale_bits) -> (poly_modulus_degree, coeff_mod_bit_sizes)``
and ``he_statements() -> letters``.

**The server's functions see no plaintext.** The grader is the client: it builds a CKKS context (TenSEAL, checked
against the Homomorphic Encryption Standard by :func:`mlsec_kit.crypto.he.check_parameters`), keeps the secret
key, and passes the student's function only the serialised *public* context (public key, relinearisation keys,
Galois keys for the linear layer; no secret key) and the serialised ciphertext of ``x``, as ``bytes``. The
function returns ``bytes``; the grader deserialises them under its own (secret) context, decrypts and compares
with the plaintext answer. A function that computes on plaintext and encrypts at the end has no plaintext to
compute on; one that tries to decrypt gets TenSEAL's "doesn't hold a secret_key" error. In the graded run the
function executes in the submission's sandboxed process and its ``bytes`` come back as a raw, length-checked blob
(:mod:`mlsec_kit.grading.wire`); the grader refuses a blob larger than twice a fresh ciphertext of the context
before handing it to TenSEAL/SEAL's parser (which validates the ciphertext against the context), and anything that
does not parse is "not a ciphertext of the context it was given".

Tolerances derive from the scale ``2^s`` and the ring degree ``N``: a fresh CKKS encryption carries an error of
order ``N / 2^s`` (the rounding of the encoding and the encryption noise, divided by the scale), and each product
multiplies it by the size of the other factor. The linear layer's output ``i`` may be off by
``N 2^(8 - s) (1 + sum_j |W_ij x_j| + |b_i|)``, the polynomial's by ``N 2^(12 - s) (1 + sum_i |c_i| |x|^i)``, and
the product of ``depth + 1`` values of magnitude at most 1 (:func:`choose_parameters`'s run) by
``N 2^(6 + 2 depth - s)``. Measured with TenSEAL on 100 instances each: the reference's worst error is 0.047 of
the linear layer's tolerance and 0.021 of the polynomial's; the depth run passes 15 runs at every scale the
instances draw. These tolerances include the drift of SEAL's primes from ``2^s`` (TenSEAL resets the scale to
``2^s`` after each rescale; :attr:`mlsec_kit.crypto.he.HEContext.scale_drift`), at most 1e-3 on the grader's
contexts and on the chains it builds (``s >= 25``). Every named wrong answer is off by 0.5 (linear layer) or 0.2
(polynomial) or more, by construction of the instances, far above these tolerances (at most 0.04 and 2e-4).

The sandbox is the security boundary: in a student's own notebook, ``check`` runs the function in the same
process as the grader's secret context, so the local check proves nothing about a function written to cheat;
the graded run does not share a process.

``choose_parameters``'s requirements (the question states them): ``depth >= 1`` rescales at scale ``2^s``,
``25 <= s <= 50`` (below 25 bits SEAL's primes, which must be 1 modulo 2N, sit far from ``2^s`` and TenSEAL's
reset of the scale after each rescale makes every product off by that much, and there may be too few of them);
the chain ``[q_0, q_1, ..., q_L, special]`` has at least ``depth + 2`` primes, each of 20 to 60 bits; the
``depth`` primes the rescales drop (the ones just before the special prime; SEAL drops the last prime of the
data chain first) have exactly ``s`` bits, so each rescale brings the scale back to about ``2^s``; the first
prime has at least ``s + 10`` bits (room for the integer part of the decrypted values, up to about ``2^10``); the
special prime is at least as large as every other prime (SEAL's recommendation for key switching); the total is
within the HE Standard's 128-bit bound for ``N`` (:data:`~mlsec_kit.crypto.he.HE_STANDARD_MAX_LOGQ`, inclusive,
as SEAL's own check); and ``N`` is the smallest degree of the standard's table at which *some* chain meeting the
requirements is secure: the cheapest chain is ``[s + 10, s, ..., s, s + 10]``, so ``N`` is the smallest degree
whose bound is at least ``(depth + 2) s + 20``. The grader builds the student's context (when it is secure and
``N <= 8192``) and runs ``depth`` ciphertext-ciphertext multiplications on it. (Very deep chains of small primes
at ``N = 32768`` can need more primes that are 1 modulo 2N than SEAL finds; the checks never build beyond 8192.)

How the instances make each typical mistake fail on every seed:

- ``server_linear`` returning an encryption of zeros, of the bias alone, or ``W x`` without the bias: every
  instance has ``|b_i| >= 0.5`` for every output and ``max_i |(W x)_i| >= 0.5``; subtracting the bias is off by
  ``2 |b_i| >= 1``. The weight transposed (``x.mm(weight)`` on a ``(m, n)`` weight): ``m != n`` always, so TenSEAL
  refuses the shapes (and a transposed product could not have the right size). The input ciphertext returned
  unchanged: its size is ``n != m``. A ``CKKSVector`` object instead of its bytes, a list of floats, bytes that do
  not parse, a ciphertext of another context (another ``N``: SEAL refuses it; the same parameters with other keys:
  it decrypts to noise): all fail. Only the first output (a dot product with ``weight[0]``): size 1, ``m >= 2``;
  trying to decrypt: TenSEAL raises.
- ``server_poly`` with the coefficients read highest degree first, without the constant term, each term one
  degree too high (``x p(x)``), ``x^2`` alone, the input returned, an encryption of zeros, the constant or the
  leading term alone: every instance is redrawn until each of these is off by at least 0.2 in some slot.
  Horner's rule on ``(c_3 x + c_2) x + ...`` needs ``degree`` levels; a degree-3 polynomial is always evaluated
  on a context with ``ceil(log2(3 + 1)) = 2`` levels (what TenSEAL's ``polyval`` or ``x^2`` computed once and a
  balanced product need), so Horner's rule runs out of levels (SEAL's "scale out of bounds") on every seed.
- ``choose_parameters``: each check evaluates the answer on instances of five kinds drawn afresh: (A) depth 1,
  ``s`` in [25, 29], smallest degree 4096; (A') depth 1, ``s`` in [30, 50], smallest degree 8192 (``3 s + 20 >=
  110 > 109``); (B) depth 3, ``s`` in [33, 39], smallest degree 8192, where a chain
  padded to 60-bit outer primes (``120 + 3 s >= 219``) exceeds 8192's bound of 218; (B') depth 3, ``s`` in
  [40, 50], smallest degree 16384 (``5 s + 20 >= 220``, not built); (C) depth 5 to 8, ``s`` in
  [30, 40], smallest degree 16384 (not built); and the boundary instance depth 4, ``s = 33``, whose cheapest chain
  totals exactly 218 bits. So: a chain one level short, or without a special prime, has fewer than ``depth + 2``
  primes; ``[60, 40, ..., 40, 60]`` or ``[60, s, ..., s, 60]`` at ``N = 8192`` is insecure on (B) and (C); the
  same chain at the smallest ``N`` it fits uses 16384 on (B), needlessly large; ``N`` fixed at 8192 (or any
  constant) is insecure on (C) or needlessly large on (A); ``N`` read off the depth alone (any table from depth
  to degree) is insecure or needlessly large on (A) or (A'), and on (B) or (B'); ``N`` from the 192-bit column is needlessly large on
  (A) (``3 s + 20 >= 95 > 75``); a strict ``<`` against the bound picks 16384 on the boundary instance; rescale
  primes of 40 bits, or of ``s + 10``, whatever ``s`` is, do not match ``s`` on (A) (``s <= 29``); a first prime
  of ``s`` bits (no room for the integer part) or a special prime smaller than the first fail the precision
  check; the kit's own convention ``s + 20`` for the outer primes (``3 s + 40 >= 115 > 109`` on (A)) forces
  8192 where 4096 suffices.
- an answer to the statements that names none or all of them fails every property (it is not an answer);
- forbidden, since a submission can import them: the kit's ``ckks_chain`` and ``ckks_context`` (they choose the
  chain and the degree) for ``choose_parameters``; the server role's ``Server.matmul`` and ``Server.dot`` for
  ``server_linear`` and ``Server.polyval`` and ``Server.multiply`` for ``server_poly`` (each computes the answer
  from the public context), with the kit's inference internals that evaluate a layer or a polynomial on a
  server's ciphertext bytes (``inference._server_per_image``, ``_server_packed``, ``_server_simd``,
  ``_server_diagonal``, ``_diagonal_layer``, ``_block_sum_layer``, ``_seal.Engine.output_poly`` and
  ``Engine.square``); and this module's reference helpers.
  ``Server.receive``/``send`` (deserialising and serialising), ``depth_left``, ``polyval_depth``,
  ``check_parameters``, ``max_total_bits`` and ``HE_STANDARD_MAX_LOGQ`` stay allowed: they are the tools the
  questions ask the student to use, not answers.

The grader's contexts are built with TenSEAL directly (not through ``ckks_context``, which is blocked while
``choose_parameters`` is graded) and cached per parameter set; SEAL draws keys and encryption noise from its own
random source, so the decryption errors differ from run to run, by far less than the margins above.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_value_error, fail, fmt, statement_checks
from ..instances import randint

SET = ExerciseSet("12_homomorphic_encryption", "Exercises: homomorphic encryption", chapter=12, extras=("tenseal",))

_HE = "mlsec_kit.crypto.he"
_CHECKER = "mlsec_kit.grading.sets.ch12"  # this module's reference helpers answer questions too
SECURITY = 128
MIN_SCALE, MAX_SCALE = 25, 50  # below 25 bits SEAL's primes drift from 2^s and run short
HEADROOM = 10  # bits the first prime holds above the scale (the integer part of decrypted values)
MAX_BUILT_DEGREE = 8192  # the grader builds and runs a student's chain up to this N
LINEAR_CONTEXTS = ((4096, (40, 29, 40), 29), (8192, (60, 40, 60), 40))  # depth 1, Galois keys
POLY_CONTEXT = (8192, (60, 40, 40, 60), 40)  # depth 2: enough for a degree-3 polynomial evaluated in depth 2
_CACHE: dict = {}
_CACHE_SIZE = 24


def _uniform(rng: torch.Generator, low: float, high: float, size=()) -> Any:
    u = torch.rand(size, generator=rng, dtype=torch.float64)
    return low + (high - low) * u if size else low + (high - low) * float(u)


def _signs(rng: torch.Generator, size) -> torch.Tensor:
    return torch.randint(0, 2, size, generator=rng).double() * 2 - 1


def _table() -> dict:
    from ...crypto.he import HE_STANDARD_MAX_LOGQ
    return HE_STANDARD_MAX_LOGQ[SECURITY]


class _Client:
    """The grader's side of one parameter set: the secret context, the public bytes, a fresh ciphertext's size."""

    def __init__(self, n: int, chain: tuple, scale_bits: int, galois: bool) -> None:
        import tenseal as ts

        from ...crypto.he import check_parameters
        check_parameters(n, list(chain), security=SECURITY)  # never build an insecure set
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=list(chain))
        ctx.global_scale = 2.0 ** scale_bits
        if galois:
            ctx.generate_galois_keys()
        ctx.generate_relin_keys()
        self.n, self.chain, self.scale_bits, self.context = n, tuple(chain), scale_bits, ctx
        self.public = ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=galois,
                                    save_relin_keys=True)
        self.fresh_bytes = len(ts.ckks_vector(ctx, [0.0] * (n // 2)).serialize())

    def encrypt(self, values: torch.Tensor) -> bytes:
        import tenseal as ts
        return ts.ckks_vector(self.context, values.double().tolist()).serialize()

    def vector(self, values: torch.Tensor) -> Any:
        import tenseal as ts
        return ts.ckks_vector(self.context, values.double().tolist())


def _client(n: int, chain, scale_bits: int, *, galois: bool) -> _Client:
    key = (n, tuple(chain), scale_bits, galois)
    if key not in _CACHE:
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _Client(n, tuple(chain), scale_bits, galois)
    return _CACHE[key]


def _decrypt_answer(client: _Client, out: Any, what: str, size: int) -> torch.Tensor:
    """The student's ``bytes`` deserialised under the grader's secret context and decrypted (float64)."""
    import tenseal as ts

    if not isinstance(out, (bytes, bytearray)):
        name = type(out).__name__
        hint = ("; return its serialisation, result.serialize()" if "CKKS" in name or "Vector" in name
                else "; decrypting is the client's job: return the serialised ciphertext, result.serialize()"
                if isinstance(out, (list, tuple, torch.Tensor, float)) else "")
        fail(f"{what} returned {describe(out)}; expected bytes, a serialised CKKS ciphertext{hint}")
    if len(out) > 2 * client.fresh_bytes:
        fail(f"{what} returned {len(out)} bytes, more than twice a fresh ciphertext of this context "
             f"({client.fresh_bytes} bytes): return one ciphertext")
    try:
        ct = ts.ckks_vector_from(client.context, bytes(out))
        values = ct.decrypt()
    except Exception as err:  # noqa: BLE001 - whatever SEAL says, it is not a ciphertext of this context
        fail(f"{what} returned {len(out)} bytes that are not a CKKS ciphertext of the context it was given "
             f"({type(err).__name__}: {str(err)[:60]}); deserialise x_ct with ts.ckks_vector_from(ctx, x_ct), "
             "compute on it and return result.serialize()")
    if len(values) != size:
        fail(f"{what} returned a ciphertext of {len(values)} values; expected {size}")
    return torch.tensor(values, dtype=torch.float64)


# ---- (a) server_linear -------------------------------------------------------------------------------------
server_linear = SET.question(
    "server_linear", "server_linear(public_context, x_ct, weight, bias) -> bytes",
    forbid=(f"{_HE}.Server.matmul", f"{_HE}.Server.dot", f"{_HE}.roles.Server.matmul", f"{_HE}.roles.Server.dot",
            f"{_HE}.inference._server_per_image", f"{_HE}.inference._server_packed",
            f"{_HE}.inference._server_simd", f"{_HE}.inference._server_diagonal",
            f"{_HE}.inference._diagonal_layer", f"{_HE}.inference._block_sum_layer", f"{_CHECKER}._reference_linear"))


def _linear_instance(rng: torch.Generator, *, n: int | None = None, m: int | None = None) -> dict:
    """``W (m, n)``, ``x (n,)`` in [-1, 1], ``b (m,)`` with ``0.5 <= |b_i| <= 1``, ``m != n``, ``max |W x| >= 0.5``."""
    n = n if n is not None else randint(rng, 3, 12)
    if m is None:
        m = randint(rng, 2, 8)
        while m == n:
            m = randint(rng, 2, 8)
    while True:
        w = _uniform(rng, -1.0, 1.0, (m, n))
        x = _uniform(rng, -1.0, 1.0, (n,))
        if float((w @ x).abs().max()) >= 0.5:
            break
    b = _signs(rng, (m,)) * _uniform(rng, 0.5, 1.0, (m,))
    return {"w": w, "x": x, "b": b}


def _reference_linear(w: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return w.double() @ x.double() + b.double()


def _linear_tolerance(client: _Client, inst: dict) -> torch.Tensor:
    size = 1 + (inst["w"].abs() @ inst["x"].abs()) + inst["b"].abs()
    return client.n * 2.0 ** (8 - client.scale_bits) * size


def _run_linear(fn, client: _Client, inst: dict) -> tuple[torch.Tensor, str]:
    m, n = inst["w"].shape
    what = f"server_linear(public context N={client.n}, x_ct ({n} values), weight ({m}, {n}), bias ({m},))"
    out = call(fn, client.public, client.encrypt(inst["x"]), inst["w"].clone(), inst["b"].clone(),
               name="server_linear")
    return _decrypt_answer(client, out, what, m), what


def _check_linear(fn, client: _Client, inst: dict) -> None:
    got, what = _run_linear(fn, client, inst)
    w, x, b = inst["w"], inst["x"], inst["b"]
    want = _reference_linear(w, x, b)
    err = (got - want).abs()
    tol = _linear_tolerance(client, inst)
    if bool((err <= tol).all()):
        return
    i = int((err - tol).argmax())
    named = {"W x without the bias: add bias": w @ x, "W x - b: add the bias": w @ x - b,
             "the bias alone: multiply x by the weight too": b, "zeros: compute on x_ct": torch.zeros_like(b)}
    hint = next((f"; that is {h}" for h, v in named.items() if bool(((got - v).abs() <= tol).all())), "")
    fail(f"{what}: output {i} decrypts to {fmt(got[i])}; expected (weight @ x + bias)[{i}] = {fmt(want[i])} "
         f"(tolerance {tol[i]:.1e} at scale 2^{client.scale_bits}){hint}")


@server_linear.prop("returns bytes: a serialised CKKS ciphertext of the context it was given, holding weight.shape[0] "
                    "values")
def _sl_form(fn, rng):
    client = _client(*LINEAR_CONTEXTS[0], galois=True)
    _run_linear(fn, client, _linear_instance(rng))


@server_linear.prop("decrypts to weight @ x + bias within the scale's tolerance (N = 4096 at 2^29 and N = 8192 at "
                    "2^40)")
def _sl_value(fn, rng):
    for params in LINEAR_CONTEXTS:
        _check_linear(fn, _client(*params, galois=True), _linear_instance(rng))


@server_linear.prop("handles one input or one output (n = 1 or m = 1)")
def _sl_edges(fn, rng):
    client = _client(*LINEAR_CONTEXTS[0], galois=True)
    _check_linear(fn, client, _linear_instance(rng, m=1, n=randint(rng, 3, 10)))
    _check_linear(fn, client, _linear_instance(rng, n=1, m=randint(rng, 2, 6)))


@server_linear.prop("raises a ValueError naming weight (or bias) when its shape does not fit x_ct's size (or the "
                    "weight's rows)")
def _sl_bad(fn, rng):
    client = _client(*LINEAR_CONTEXTS[0], galois=True)
    inst = _linear_instance(rng)
    m, n = inst["w"].shape
    x_ct = client.encrypt(inst["x"])
    wide = torch.cat([inst["w"], _uniform(rng, -1, 1, (m, 1))], dim=1)
    expect_value_error(fn, (client.public, x_ct, wide, inst["b"]),
                        f"server_linear(..., x_ct ({n} values), weight ({m}, {n + 1}), bias ({m},))",
                        f"the weight's columns must match the {n} encrypted values", "weight")
    expect_value_error(fn, (client.public, x_ct, inst["w"], torch.cat([inst["b"], inst["b"][:1]])),
                        f"server_linear(..., x_ct ({n} values), weight ({m}, {n}), bias ({m + 1},))",
                        f"the bias must have one entry per row of the weight ({m})", "bias")


# ---- (b) server_poly ---------------------------------------------------------------------------------------
server_poly = SET.question(
    "server_poly", "server_poly(public_context, x_ct, coeffs) -> bytes",
    forbid=(f"{_HE}.Server.polyval", f"{_HE}.Server.multiply", f"{_HE}.roles.Server.polyval",
            f"{_HE}.roles.Server.multiply", f"{_HE}._seal.Engine.output_poly", f"{_HE}._seal.Engine.square",
            f"{_CHECKER}._reference_poly"))


def _reference_poly(coeffs: list, x: torch.Tensor) -> torch.Tensor:
    """``sum_i c_i x^i``, coefficients lowest degree first, in float64."""
    return sum(c * x.double() ** i for i, c in enumerate(coeffs))


def _poly_alternatives(coeffs: list, x: torch.Tensor) -> dict:
    """What the typical mistakes decrypt to."""
    d = len(coeffs) - 1
    ref = _reference_poly(coeffs, x)
    return {"the coefficients read highest degree first; coeffs[i] multiplies x^i":
            _reference_poly(coeffs[::-1], x),
            "the polynomial without its constant term coeffs[0]": ref - coeffs[0],
            "x p(x): every term one degree too high; coeffs[0] is the constant": x * ref,
            "x^2 alone: apply the coefficients": x ** 2,
            "x itself: evaluate the polynomial on x_ct": x.clone(),
            "zeros: evaluate the polynomial on x_ct": torch.zeros_like(x),
            "the constant term alone": torch.full_like(x, coeffs[0]),
            "the leading term alone: sum every term": coeffs[d] * x ** d}


def _poly_instance(rng: torch.Generator, degree: int) -> tuple[list, torch.Tensor]:
    """Coefficients with ``0.3 <= |c_i| <= 1.2`` and ``x`` in [-1.5, 1.5] (4 to 10 slots), redrawn until every
    named mistake is off by at least 0.2 in some slot."""
    while True:
        coeffs = (_signs(rng, (degree + 1,)) * _uniform(rng, 0.3, 1.2, (degree + 1,))).tolist()
        x = _uniform(rng, -1.5, 1.5, (randint(rng, 4, 10),))
        ref = _reference_poly(coeffs, x)
        if all(float((alt - ref).abs().max()) >= 0.2 for alt in _poly_alternatives(coeffs, x).values()):
            return coeffs, x


def _check_poly(fn, rng: torch.Generator, degree: int) -> None:
    client = _client(*POLY_CONTEXT, galois=False)
    coeffs, x = _poly_instance(rng, degree)
    what = (f"server_poly(public context N={client.n} with 2 levels, x_ct ({len(x)} values), coeffs of degree "
            f"{degree})")
    out = call(fn, client.public, client.encrypt(x), list(coeffs), name="server_poly")
    got = _decrypt_answer(client, out, what, len(x))
    want = _reference_poly(coeffs, x)
    size = sum(abs(c) * x.abs() ** i for i, c in enumerate(coeffs)) + 1
    tol = client.n * 2.0 ** (12 - client.scale_bits) * size
    err = (got - want).abs()
    if bool((err <= tol).all()):
        return
    i = int((err - tol).argmax())
    hint = next((f"; that is {h}" for h, v in _poly_alternatives(coeffs, x).items()
                 if bool(((got - v).abs() <= tol).all())), "")
    fail(f"{what}: slot {i} (x = {fmt(x[i])}) decrypts to {fmt(got[i])}; expected p(x) = {fmt(want[i])} "
         f"(tolerance {tol[i]:.1e}){hint}")


@server_poly.prop("returns bytes: a serialised CKKS ciphertext of the context it was given, one value per slot of x")
def _sp_form(fn, rng):
    client = _client(*POLY_CONTEXT, galois=False)
    coeffs, x = _poly_instance(rng, 2)
    out = call(fn, client.public, client.encrypt(x), list(coeffs), name="server_poly")
    _decrypt_answer(client, out, f"server_poly(public context, x_ct ({len(x)} values), coeffs {coeffs!r:.40})",
                    len(x))


@server_poly.prop("decrypts to the degree-2 polynomial sum_i coeffs[i] x^i, slot by slot")
def _sp_quadratic(fn, rng):
    for _ in range(2):
        _check_poly(fn, rng, 2)


def _wrap_depth(fn):
    """``fn`` with SEAL's "scale out of bounds" explained (Horner's rule needs one level per degree)."""
    def wrapped(*args):
        try:
            return fn(*args)
        except ValueError as err:
            if "scale out of bounds" in str(err):
                raise ValueError(f"{err}: the ciphertext ran out of levels; a degree-3 polynomial fits in "
                                 "ceil(log2(3 + 1)) = 2 levels (TenSEAL's polyval, or x^2 computed once and "
                                 "multiplied by c_2 + c_3 x), not in Horner's 3") from None
            raise
    wrapped.__name__ = getattr(fn, "__name__", "server_poly")
    return wrapped


@server_poly.prop("decrypts to a degree-3 polynomial on a context with only 2 levels (depth ceil(log2(degree + 1)))")
def _sp_cubic(fn, rng):
    for _ in range(2):
        _check_poly(_wrap_depth(fn), rng, 3)


@server_poly.prop("raises a ValueError naming coeffs when coeffs is empty or needs more levels than x_ct has left "
                  "(degree 4 to 7 on 2 levels)")
def _sp_bad(fn, rng):
    client = _client(*POLY_CONTEXT, galois=False)
    x = _uniform(rng, -1.0, 1.0, (randint(rng, 4, 8),))
    x_ct = client.encrypt(x)
    expect_value_error(fn, (client.public, x_ct, []), "server_poly(public context, x_ct, coeffs=[])",
                        "there is no polynomial to evaluate", "coeffs")
    degree = randint(rng, 4, 7)
    coeffs = (_signs(rng, (degree + 1,)) * _uniform(rng, 0.3, 1.2, (degree + 1,))).tolist()
    expect_value_error(fn, (client.public, x_ct, coeffs),
                        f"server_poly(public context, x_ct with 2 levels left, coeffs of degree {degree})",
                        f"degree {degree} needs ceil(log2({degree} + 1)) = {math.ceil(math.log2(degree + 1))} levels; "
                        "check the levels left (he.depth_left) before TenSEAL fails with 'scale out of bounds'",
                        "coeffs")


# ---- (c) choose_parameters ---------------------------------------------------------------------------------
choose_parameters = SET.question(
    "choose_parameters", "choose_parameters(depth, scale_bits) -> (poly_modulus_degree, coeff_mod_bit_sizes)",
    forbid=(f"{_HE}.ckks_chain", f"{_HE}.ckks_context", f"{_HE}.params.ckks_chain", f"{_HE}.params.ckks_context",
            f"{_CHECKER}._reference_parameters", f"{_CHECKER}._smallest_degree"))


def _smallest_degree(depth: int, scale_bits: int) -> int | None:
    """The smallest ``N`` of the standard's table whose 128-bit bound holds ``(depth + 2) s + 20`` bits."""
    need = (depth + 2) * scale_bits + 2 * HEADROOM
    return next((n for n, bound in sorted(_table().items()) if need <= bound), None)


def _reference_parameters(depth: int, scale_bits: int) -> tuple[int, list]:
    chain = [scale_bits + HEADROOM] + [scale_bits] * depth + [scale_bits + HEADROOM]
    return _smallest_degree(depth, scale_bits), chain


def _parameter_instances(rng: torch.Generator) -> list[tuple[int, int, str]]:
    """``(depth, scale_bits, kind)``: one of each kind A, A', B, B', C (see the module's docstring) in random
    order, and the boundary instance (depth 4, s = 33: 218 bits, exactly 8192's bound). A and A' share depth 1, B
    and B' depth 3, with smallest degrees that differ: an ``N`` read off the depth alone fails one of each pair."""
    insts = [(1, randint(rng, 25, 29), "A"), (1, randint(rng, 30, 50), "A'"), (3, randint(rng, 33, 39), "B"),
             (3, randint(rng, 40, 50), "B'"), (randint(rng, 5, 8), randint(rng, 30, 40), "C"), (4, 33, "edge")]
    order = torch.randperm(len(insts), generator=rng).tolist()
    return [insts[i] for i in order]


def _parameters(fn, depth: int, scale_bits: int) -> tuple[int, list, str]:
    what = f"choose_parameters(depth={depth}, scale_bits={scale_bits})"
    out = call(fn, depth, scale_bits, name="choose_parameters")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} returned {describe(out)}; expected a pair (poly_modulus_degree, coeff_mod_bit_sizes)")
    n, chain = out
    if isinstance(n, bool) or not isinstance(n, int) or n not in _table():
        fail(f"{what} returned poly_modulus_degree {n!r}; expected an int of the HE Standard's table, one of "
             f"{sorted(_table())}")
    if not isinstance(chain, (list, tuple)) or not chain \
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in chain):
        fail(f"{what} returned coeff_mod_bit_sizes {describe(chain)}; expected a list of ints (bit sizes)")
    chain = list(chain)
    bad = [b for b in chain if not 20 <= b <= 60]
    if bad:
        fail(f"{what} returned a prime of {bad[0]} bits in {chain}; SEAL's primes have 20 to 60 bits")
    return n, chain, what


def _structure_problem(depth: int, scale_bits: int, chain: list) -> str:
    if len(chain) < depth + 2:
        return (f"{len(chain)} primes give depth {max(len(chain) - 2, 0)}, one short of {depth}: a chain needs the "
                f"first prime, {depth} rescale prime(s) and the special prime, {depth + 2} in all")
    rescale = chain[-depth - 1:-1]
    if any(b != scale_bits for b in rescale):
        return (f"the primes the {depth} rescale(s) drop (just before the special prime) are {rescale} bits; each must "
                f"have scale_bits = {scale_bits} bits, so a rescale brings the scale back to 2^{scale_bits}")
    return ""


def _run_chain(n: int, chain: list, depth: int, scale_bits: int, rng: torch.Generator, what: str) -> None:
    """Build the context and multiply ``depth`` fresh ciphertexts into a first one; check the decryption."""
    try:
        client = _client(n, chain, scale_bits, galois=False)
    except Exception as err:  # noqa: BLE001 - SEAL could not build it
        fail(f"{what}: SEAL could not build N = {n} with {chain} ({type(err).__name__}: {str(err)[:80]})")
    factors = [_signs(rng, (8,)) * _uniform(rng, 0.5, 1.0, (8,)) for _ in range(depth + 1)]
    try:
        ct = client.vector(factors[0])
        for f in factors[1:]:
            ct = ct * client.vector(f)
        got = torch.tensor(ct.decrypt(), dtype=torch.float64)
    except Exception as err:  # noqa: BLE001
        fail(f"{what}: {depth} multiplication(s) on N = {n}, {chain} at scale 2^{scale_bits} failed "
             f"({type(err).__name__}: {str(err)[:80]})")
    want = torch.stack(factors).prod(0)
    tol = n * 2.0 ** (6 + 2 * depth - scale_bits)
    err = float((got - want).abs().max())
    if err > tol:
        fail(f"{what}: after {depth} multiplication(s) the decryption is off by {err:.2e} (tolerance {tol:.1e})")


@choose_parameters.prop("returns (poly_modulus_degree, coeff_mod_bit_sizes): a degree of the HE Standard's table and "
                        "a list of ints from 20 to 60")
def _cp_form(fn, rng):
    for depth, s, _ in _parameter_instances(rng)[:2]:
        _parameters(fn, depth, s)


@choose_parameters.prop("is secure: the chain's total bits are within the HE Standard's 128-bit bound for that degree")
def _cp_secure(fn, rng):
    for depth, s, _ in _parameter_instances(rng):
        n, chain, what = _parameters(fn, depth, s)
        bound = _table()[n]
        if sum(chain) > bound:
            fail(f"{what} = ({n}, {chain}): {sum(chain)} bits, but the HE Standard allows at most {bound} bits at "
                 f"N = {n} for 128-bit security; use a larger N or smaller primes")


@choose_parameters.prop("supports depth multiplications at the scale: depth + 2 primes or more, the rescale primes of "
                        "scale_bits bits")
def _cp_depth(fn, rng):
    for depth, s, _ in _parameter_instances(rng):
        n, chain, what = _parameters(fn, depth, s)
        problem = _structure_problem(depth, s, chain)
        if problem:
            fail(f"{what} = ({n}, {chain}): {problem}")


@choose_parameters.prop(f"keeps the precision: a first prime of at least scale_bits + {HEADROOM} bits and a special "
                        "prime at least as large as every other")
def _cp_precision(fn, rng):
    for depth, s, _ in _parameter_instances(rng):
        n, chain, what = _parameters(fn, depth, s)
        if chain[0] < s + HEADROOM:
            fail(f"{what} = ({n}, {chain}): the first prime has {chain[0]} bits; it holds the decrypted value at "
                 f"scale 2^{s} and needs at least {s + HEADROOM} bits ({HEADROOM} bits for the integer part)")
        if len(chain) >= 2 and chain[-1] < max(chain[:-1]):
            fail(f"{what} = ({n}, {chain}): the special (last) prime has {chain[-1]} bits, fewer than the largest "
                 f"other prime ({max(chain[:-1])}); key switching needs it at least as large")


@choose_parameters.prop("uses the smallest degree at which a chain meeting the requirements is secure")
def _cp_smallest(fn, rng):
    for depth, s, _ in _parameter_instances(rng):
        n, chain, what = _parameters(fn, depth, s)
        want, cheapest = _reference_parameters(depth, s)
        if n != want:
            total = sum(cheapest)
            how = (f"{cheapest} ({total} bits) fits N = {want}, whose bound is {_table()[want]} bits (inclusive)"
                   if n > want else
                   f"no chain meeting the requirements ({total} bits at least) is secure below N = {want}")
            fail(f"{what} returned N = {n}; {how}")


@choose_parameters.prop("builds (N <= 8192) and runs depth ciphertext multiplications that decrypt within the "
                        "scale's tolerance")
def _cp_run(fn, rng):
    for depth, s, kind in _parameter_instances(rng):
        if kind not in ("A", "B"):
            continue
        n, chain, what = _parameters(fn, depth, s)
        if n > MAX_BUILT_DEGREE:
            fail(f"{what} = ({n}, {chain}): N = {n} for depth {depth} at scale 2^{s}; "
                 f"{_reference_parameters(depth, s)[0]} suffices")
        if sum(chain) > _table()[n]:
            fail(f"{what} = ({n}, {chain}): insecure, {sum(chain)} bits above the bound of {_table()[n]}; the grader "
                 "does not build it")
        _run_chain(n, chain, depth, s, rng, f"{what} = ({n}, {chain})")


@choose_parameters.prop("raises a ValueError naming depth (below 1, or too deep for any degree) or scale_bits "
                        f"(outside [{MIN_SCALE}, {MAX_SCALE}])")
def _cp_bad(fn, rng):
    s = randint(rng, 25, 40)
    expect_value_error(fn, (0, s), f"choose_parameters(depth=0, scale_bits={s})", "depth must be at least 1",
                        "depth")
    top = max(_table().values())
    deep = math.ceil((top - 2 * HEADROOM + 1) / s) - 2 + randint(rng, 0, 5)  # (deep + 2) s + 20 > top
    expect_value_error(fn, (deep, s), f"choose_parameters(depth={deep}, scale_bits={s})",
                        f"{(deep + 2) * s + 2 * HEADROOM} bits exceed the standard's largest bound "
                        f"({top} bits at N = {max(_table())})", "depth")
    for bad in (randint(rng, 5, MIN_SCALE - 1), randint(rng, MAX_SCALE + 1, 70)):
        expect_value_error(fn, (2, bad), f"choose_parameters(depth=2, scale_bits={bad})",
                            f"scale_bits must be in [{MIN_SCALE}, {MAX_SCALE}]", "scale_bits")


# ---- (d) he_statements (conceptual) ------------------------------------------------------------------------
he_statements = SET.question("he_statements", "he_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "Encrypting the same input twice under the same key gives the same ciphertext, so a server can cache its "
         "answers to repeated queries.",
    "b": "A server that holds only the public context (public, relinearisation and Galois keys) learns nothing "
         "about the client's inputs from the CKKS ciphertexts it receives and computes on, beyond their number and "
         "sizes, as long as the parameters meet the HE Standard's bound and no decrypted result is shown to it: "
         "CKKS is IND-CPA secure under the RLWE "
         "assumption (with the usual circular-security assumption for the relinearisation and Galois keys), and "
         "the evaluation keys do not help to decrypt.",
    "c": "Because the queries are encrypted, a client that sends many encrypted queries and decrypts the answers "
         "learns nothing about the server's model.",
    "d": "In the encrypted inference of chapter 12 the server multiplies the client's ciphertexts by its weights in "
         "plaintext: HE keeps the client's inputs and outputs from the server, and does nothing against a "
         "client that learns about the model from the outputs it asks for (model extraction, chapter 9).",
    "e": "At the same coefficient modulus, a larger poly_modulus_degree N gives weaker security, which is why the "
         "HE Standard's bound on log2 q shrinks as N grows.",
    "f": "Each extra prime in the chain buys one more level of multiplicative depth at a fixed N but lowers "
         "security; past the HE Standard's bound for that N the set is no longer 128-bit secure, so a deeper "
         "circuit needs a larger N, and with it larger ciphertexts and keys and slower operations.",
    "g": "The Galois keys the client sends let the server read one slot at a time: a rotation moves any slot to "
         "position 0, where the server can decrypt it.",
    "h": "A server that returns a ciphertext of W x + b has thereby shown the client that it used its real model: "
         "under HE a server cannot return a wrong answer without the client noticing.",
    "i": "The ciphertext of W x + b that the server returns tells the client the m output values and nothing else "
         "about W and b.",
}
TRUE_STATEMENTS = frozenset("bdf")
_WHY_NOT = {
    "a": "CKKS (like every IND-CPA scheme) encrypts with fresh randomness: the same input encrypts differently each "
         "time, or the server could tell equal inputs apart",
    "c": "the client decrypts the outputs, and outputs are what a model-extraction attack needs (chapter 9); "
         "encryption hides the queries from the server, not the model's answers from the client",
    "e": "it is the other way round: for a fixed log2 q a larger N makes the lattice problem harder, which is why "
         "the standard allows a larger log2 q as N grows",
    "g": "rotations are key switching: the server computes an encryption of the rotated vector under the same "
         "secret key; nothing it holds decrypts, one slot or all",
    "h": "HE gives confidentiality, not integrity: the server can compute anything (another model, a constant) on "
         "the ciphertexts and the client cannot tell; the threat model is an honest-but-curious server",
    "i": "the client decrypts every slot, not only the first m: after x.mm(W^T) + b TenSEAL's other slots hold "
         "replicas of W x without the bias (so the client learns b), and SEAL has no circuit privacy, so the noise "
         "depends on the weights too; masking the unused slots and flooding the noise are the server's job",
}


statement_checks(he_statements, "he_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what IND-CPA hides and from whom, who sees the "
                 "outputs, and what each prime of the chain costs")
