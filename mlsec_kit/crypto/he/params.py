"""Choosing and checking homomorphic-encryption parameters against the Homomorphic Encryption Standard.

A CKKS or BFV parameter set is a ring degree ``N`` (the ``poly_modulus_degree``, a power of two) and a chain of
primes whose product is the ciphertext modulus ``q``. Security falls as ``log2 q`` grows for a fixed ``N``: the
Homomorphic Encryption Standard (Albrecht et al. 2018, Table 1, ternary secret, classical attacks) gives, for each
``N`` and security level, the largest total ``log2 q`` that keeps the best known lattice attacks above ``2^128``,
``2^192`` or ``2^256`` operations. :data:`HE_STANDARD_MAX_LOGQ` holds that table; :func:`ckks_context` and
:func:`bfv_context` refuse any set above it with a message that states the bound, ``N``, the security level and
the total, before SEAL answers with its terse "encryption parameters are not set correctly".

In a CKKS chain ``[q_0, q_1, ..., q_L, special]`` the first prime holds the decrypted value (its bits above the
scale are the integer part's headroom), each middle prime is consumed by one rescale after a multiplication (one
level of multiplicative depth), and the last ("special") prime is used only for key switching. So a chain of
length ``L + 2`` gives depth ``L``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

#: Homomorphic Encryption Standard v1.1 (Albrecht et al. 2018), Table 1, ternary secret, classical security:
#: ``HE_STANDARD_MAX_LOGQ[security][N]`` is the largest total bit count of the coefficient modulus.
#: (The same numbers are Microsoft SEAL's ``SEAL_HE_STD_PARMS_{128,192,256}_TC``.)
HE_STANDARD_MAX_LOGQ: Dict[int, Dict[int, int]] = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476},
}
#: ring degrees the standard (and SEAL) covers
POLY_MODULUS_DEGREES: Tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768)
#: SEAL's largest prime in a coefficient modulus chain
MAX_PRIME_BITS = 60
#: smallest prime (and scale) this kit accepts; below it CKKS precision is useless and SEAL may find no primes
MIN_PRIME_BITS = 20
#: fewest bits :func:`ckks_chain` leaves between the scale and the first prime (the integer part of values)
MIN_INTEGER_BITS = 10


def _check_security(security: Any) -> int:
    if isinstance(security, bool) or security not in HE_STANDARD_MAX_LOGQ:
        raise ValueError(f"security must be one of {sorted(HE_STANDARD_MAX_LOGQ)} (bits), got {security!r}")
    return int(security)


def _check_degree(poly_modulus_degree: Any) -> int:
    if isinstance(poly_modulus_degree, bool) or poly_modulus_degree not in POLY_MODULUS_DEGREES:
        raise ValueError(f"poly_modulus_degree must be one of {list(POLY_MODULUS_DEGREES)}, "
                         f"got {poly_modulus_degree!r}")
    return int(poly_modulus_degree)


def max_total_bits(poly_modulus_degree: int, *, security: int = 128) -> int:
    """The Homomorphic Encryption Standard's largest total ``log2 q`` for ring degree ``N`` and a security level.

    Args:
        poly_modulus_degree: ``N``, one of 1024 .. 32768.
        security: classical security level in bits, 128, 192 or 256.

    Returns:
        The bound in bits (Albrecht et al. 2018, Table 1, ternary secret).
    """
    return HE_STANDARD_MAX_LOGQ[_check_security(security)][_check_degree(poly_modulus_degree)]


def check_parameters(poly_modulus_degree: int, coeff_mod_bit_sizes: Sequence[int], *, security: int = 128) -> None:
    """Refuse a coefficient-modulus chain that SEAL cannot build or that is weaker than ``security`` bits.

    Args:
        poly_modulus_degree: ``N``, one of 1024 .. 32768.
        coeff_mod_bit_sizes: bit sizes of the primes, each in [20, 60].
        security: 128, 192 or 256.

    Raises:
        ValueError: naming the argument; an over-long chain's message states the bound, ``N``, the security level
            and the total.
    """
    n = _check_degree(poly_modulus_degree)
    sec = _check_security(security)
    if isinstance(coeff_mod_bit_sizes, (str, bytes)) or not hasattr(coeff_mod_bit_sizes, "__len__"):
        raise TypeError(f"coeff_mod_bit_sizes must be a list of ints, got {type(coeff_mod_bit_sizes).__name__}")
    chain = list(coeff_mod_bit_sizes)
    if len(chain) < 2:
        raise ValueError(f"coeff_mod_bit_sizes needs at least 2 primes (data + special), got {chain}")
    for b in chain:
        if isinstance(b, bool) or not isinstance(b, int):
            raise TypeError(f"coeff_mod_bit_sizes must hold ints, got {b!r}")
        if b > MAX_PRIME_BITS:
            raise ValueError(f"coeff_mod_bit_sizes: a prime of {b} bits exceeds SEAL's limit of {MAX_PRIME_BITS} "
                             f"bits; accepted range is [{MIN_PRIME_BITS}, {MAX_PRIME_BITS}]")
        if b < MIN_PRIME_BITS:
            raise ValueError(f"coeff_mod_bit_sizes: a prime of {b} bits is below {MIN_PRIME_BITS}; "
                             f"accepted range is [{MIN_PRIME_BITS}, {MAX_PRIME_BITS}]")
    total = sum(chain)
    bound = HE_STANDARD_MAX_LOGQ[sec][n]
    if total > bound:
        raise ValueError(
            f"insecure parameters: coeff_mod_bit_sizes {chain} total {total} bits, but the Homomorphic Encryption "
            f"Standard allows at most {bound} bits for poly_modulus_degree N = {n} at {sec}-bit security; use a "
            f"larger N, fewer or smaller primes")


@dataclass
class HEContext:
    """A TenSEAL context with the parameters that made it, as a reader wants to see them.

    Attributes:
        context: the ``tenseal.Context`` (holds the secret key when built by :func:`ckks_context`/:func:`bfv_context`).
        scheme: ``"ckks"`` or ``"bfv"``.
        poly_modulus_degree: ``N``.
        coeff_mod_bit_sizes: the prime chain's bit sizes, special prime last.
        security: the classical security level the chain was checked against.
        scale_bits: CKKS scale ``log2 Delta`` (``None`` for BFV).
        plain_modulus: BFV plaintext modulus (``None`` for CKKS).
    """
    context: Any = field(repr=False)
    scheme: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: Tuple[int, ...]
    security: int
    scale_bits: Optional[int] = None
    plain_modulus: Optional[int] = None

    @property
    def slots(self) -> int:
        """Values one ciphertext holds: ``N / 2`` complex slots for CKKS, ``N`` for BFV batching."""
        return self.poly_modulus_degree // 2 if self.scheme == "ckks" else self.poly_modulus_degree

    @property
    def depth(self) -> int:
        """Multiplicative levels available to a fresh CKKS ciphertext (chain length minus 2; 0 for BFV)."""
        return len(self.coeff_mod_bit_sizes) - 2 if self.scheme == "ckks" else 0

    @property
    def total_bits(self) -> int:
        """``log2 q`` of the whole chain, special prime included (what the standard bounds)."""
        return int(sum(self.coeff_mod_bit_sizes))

    @property
    def integer_bits(self) -> Optional[int]:
        """CKKS: bits between the scale and the first prime; values must stay below ``2^(integer_bits - 1)`` in
        magnitude at every step (``None`` for BFV)."""
        if self.scheme != "ckks" or self.scale_bits is None:
            return None
        return int(self.coeff_mod_bit_sizes[0]) - int(self.scale_bits)

    @property
    def rescale_primes(self) -> Tuple[int, ...]:
        """The actual primes ``q_1 .. q_L`` that rescalings divide by (CKKS; empty for BFV)."""
        if self.scheme != "ckks":
            return ()
        from tenseal import sealapi  # noqa: F401  (registers SEAL's Modulus type)
        qs = self.context.seal_context().data.key_context_data().parms().coeff_modulus()
        return tuple(int(q.value()) for q in qs[1:-1])

    @property
    def scale_drift(self) -> float:
        """Largest ``|q_i / 2^scale_bits - 1|`` over the rescale primes (0.0 if there are none).

        SEAL's primes must be ``1 mod 2N``, so a prime of ``scale_bits`` bits can sit well below ``2^scale_bits``
        when ``2N`` is not small beside it; TenSEAL resets a ciphertext's scale to ``2^scale_bits`` after each
        rescale, so every multiplication is off by about this relative amount. Measured: at N = 8192 and 20-bit
        primes the two rescale primes are 0.984 and 0.75 times 2^20, and x^4 of [1, 2] decrypted as [1.38, 21.98];
        25-bit primes drift by a few percent; 30-bit ones by 5e-5 to 2.4e-4 at N = 8192 (more primes sit further
        away), 2.2e-3 at 16384 and 7.7e-3 at 32768; 40-bit ones by less than 1e-5.
        """
        if self.scheme != "ckks" or self.scale_bits is None:
            return 0.0
        return max((abs(q / 2.0 ** self.scale_bits - 1.0) for q in self.rescale_primes), default=0.0)

    @property
    def max_total_bits(self) -> int:
        """The standard's bound for this ``N`` and security level."""
        return max_total_bits(self.poly_modulus_degree, security=self.security)

    def public_bytes(self, *, galois: bool = True) -> bytes:
        """The serialised public context: parameters, public key, relinearisation and Galois keys; no secret key.

        Args:
            galois: include the Galois (rotation) keys, most of the size (about 43 MB of 46 MB at N = 8192 with
                four primes); ``"simd"`` inference needs none, ``"packed"``/``"per_image"`` and training do.
        """
        return self.context.serialize(save_public_key=True, save_secret_key=False,
                                      save_galois_keys=bool(galois) and self.context.has_galois_keys(),
                                      save_relin_keys=self.context.has_relin_keys())

    @property
    def key_id(self) -> str:
        """SHA-256 (hex, 16 digits) of the serialised parameters and public key: equal for a client and a server
        built from its public context, different for another key pair with the same parameters (whose
        ciphertexts would decrypt to garbage)."""
        cached = self.__dict__.get("_key_id")
        if cached is None:
            import hashlib
            data = self.context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                          save_relin_keys=False)
            cached = hashlib.sha256(data).hexdigest()[:16]
            self.__dict__["_key_id"] = cached
        return cached

    def secret_bytes(self) -> bytes:
        """The serialised parameters and secret key alone (what the client must never send)."""
        if not self.context.is_private():
            raise ValueError("this context holds no secret key")
        return self.context.serialize(save_public_key=False, save_secret_key=True, save_galois_keys=False,
                                      save_relin_keys=False)

    def ciphertext_bytes(self) -> int:
        """Serialised size in bytes of one fresh ciphertext (an encryption of zeros, SEAL's compression on)."""
        import tenseal as ts
        if self.scheme == "ckks":
            return len(ts.ckks_vector(self.context, [0.0]).serialize())
        return len(ts.bfv_vector(self.context, [0]).serialize())

    def summary(self) -> Dict[str, Any]:
        """The parameters and the derived quantities as a dict (for a table in a chapter)."""
        return {"scheme": self.scheme, "poly_modulus_degree": self.poly_modulus_degree,
                "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes), "total_bits": self.total_bits,
                "max_total_bits": self.max_total_bits, "security": self.security, "slots": self.slots,
                "depth": self.depth, "scale_bits": self.scale_bits, "plain_modulus": self.plain_modulus,
                "scale_drift": self.scale_drift, "integer_bits": self.integer_bits}


def _without_relin_keys(ctx: Any, scale: Optional[float] = None) -> Any:
    """The same context (secret key, public key, scale) without relinearisation keys: TenSEAL generates them with
    every context, so ``relin=False`` reloads it without them (the server then cannot multiply two ciphertexts)."""
    import tenseal as ts
    out = ts.context_from(ctx.serialize(save_public_key=True, save_secret_key=True, save_galois_keys=False,
                                        save_relin_keys=False))
    if scale is not None:
        out.global_scale = scale
    return out


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def ckks_chain(*, depth: int, scale_bits: int = 40) -> list:
    """The modulus chain for ``depth`` rescales at scale ``2^scale_bits``.

    ``[first, scale_bits x depth, special]`` with ``first = special = min(scale_bits + 20, 60)``: the first prime
    leaves ``first - scale_bits`` bits (20 up to ``scale_bits = 40``, then down to :data:`MIN_INTEGER_BITS` at 50)
    for the integer part of decrypted values, which must stay below ``2^(first - scale_bits - 1)`` in magnitude
    (an overflow in one slot corrupts all of them); each middle prime is about the scale, so a rescale brings the
    scale back to about ``2^scale_bits``.

    Args:
        depth: multiplicative depth, an int >= 0.
        scale_bits: ``log2`` of the CKKS scale, in [20, 50] (above 50 the 60-bit limit on the first prime would
            leave fewer than 10 integer bits: measured, a product at scale 2^58 decrypts to garbage).

    Returns:
        The list of bit sizes.
    """
    _check_int("depth", depth, 0, 10 ** 6)
    _check_int("scale_bits", scale_bits, MIN_PRIME_BITS, MAX_PRIME_BITS - MIN_INTEGER_BITS)
    outer = min(scale_bits + 20, MAX_PRIME_BITS)
    return [outer] + [scale_bits] * depth + [outer]


def ckks_context(*, depth: Optional[int] = None, scale_bits: Optional[int] = None,
                 poly_modulus_degree: Optional[int] = None, coeff_mod_bit_sizes: Optional[Sequence[int]] = None,
                 security: int = 128, min_slots: int = 1, galois: bool = True, relin: bool = True) -> HEContext:
    """Build a CKKS context from what a reader cares about, or check an explicit parameter set.

    Either give ``depth`` (and optionally ``scale_bits``, default 40): the chain is :func:`ckks_chain` and ``N`` is
    the smallest degree whose standard bound holds the chain and whose ``N / 2`` slots hold ``min_slots`` values
    (or the ``poly_modulus_degree`` you give, checked). Or give ``poly_modulus_degree`` and
    ``coeff_mod_bit_sizes`` explicitly (``scale_bits`` then defaults to the second prime's size); a ``depth`` given
    with them is checked against the chain.

    Args:
        depth: multiplicative depth wanted, ``0 <= depth <= len(chain) - 2``.
        scale_bits: ``log2`` of the scale, in [20, 60]. Below about 25 bits the rescale primes can sit far from
            ``2^scale_bits`` and every multiplication is off by that much (see :attr:`HEContext.scale_drift`).
        poly_modulus_degree: ``N``, one of 1024 .. 32768.
        coeff_mod_bit_sizes: prime bit sizes, each in [20, 60], special prime last (and at least as large as
            every other prime).
        security: 128, 192 or 256 bits (Homomorphic Encryption Standard, Table 1, ternary secret).
        min_slots: the context must pack at least this many values per ciphertext (``N / 2 >= min_slots``).
        galois: generate Galois keys (rotations: sums, dot and matrix products). They are large (tens of MB at
            ``N = 8192``).
        relin: keep relinearisation keys (ciphertext-ciphertext multiplication; TenSEAL always makes them, so
            ``relin=False`` removes them and a server given the public context cannot multiply two ciphertexts).

    Returns:
        An :class:`HEContext` holding the secret key.

    Raises:
        ValueError: a special (last) prime smaller than another prime (key-switching noise), an insecure set (the message states the bound, ``N``, the security level and the total),
            a prime above 60 bits, ``scale_bits`` outside [20, 60], ``depth >= len(chain) - 1``, no degree fits.
    """
    import tenseal as ts
    sec = _check_security(security)
    _check_int("min_slots", min_slots, 1, POLY_MODULUS_DEGREES[-1] // 2)
    if scale_bits is not None:
        _check_int("scale_bits", scale_bits, MIN_PRIME_BITS, MAX_PRIME_BITS)
    if depth is not None:
        _check_int("depth", depth, 0, 10 ** 6)
    if coeff_mod_bit_sizes is not None:
        if poly_modulus_degree is None:
            raise ValueError("coeff_mod_bit_sizes needs poly_modulus_degree too (or give depth= and let the kit "
                             "choose both)")
        chain = list(coeff_mod_bit_sizes)
        check_parameters(poly_modulus_degree, chain, security=sec)
        if depth is not None and depth >= len(chain) - 1:
            raise ValueError(f"depth {depth} needs a chain of at least {depth + 2} primes (first, {depth} rescale "
                             f"primes, special); coeff_mod_bit_sizes {chain} gives depth at most {len(chain) - 2}")
        if scale_bits is None:
            scale_bits = chain[1] if len(chain) > 2 else min(chain[0], 40)
        if scale_bits >= chain[0]:
            raise ValueError(f"scale_bits {scale_bits} must be below the first prime ({chain[0]} bits) of "
                             f"coeff_mod_bit_sizes: the bits between them hold the integer part of every value")
        if chain[0] - scale_bits < MIN_INTEGER_BITS:
            import warnings
            warnings.warn(f"coeff_mod_bit_sizes {chain} with scale_bits {scale_bits} leaves {chain[0] - scale_bits} "
                          f"integer bits: every value, intermediate ones included, must stay below "
                          f"2^{chain[0] - scale_bits - 1} or all slots decrypt to garbage", UserWarning, stacklevel=2)
        n = int(poly_modulus_degree)
    else:
        if depth is None:
            raise ValueError("give depth= (multiplicative depth, an int >= 0) or both poly_modulus_degree= and "
                             "coeff_mod_bit_sizes=")
        if scale_bits is None:
            scale_bits = 40
        chain = ckks_chain(depth=depth, scale_bits=scale_bits)
        if poly_modulus_degree is not None:
            n = _check_degree(poly_modulus_degree)
            check_parameters(n, chain, security=sec)
        else:
            fits = [d for d in POLY_MODULUS_DEGREES
                    if sum(chain) <= HE_STANDARD_MAX_LOGQ[sec][d] and d // 2 >= min_slots]
            if not fits:
                raise ValueError(f"no poly_modulus_degree fits: chain {chain} totals {sum(chain)} bits, the "
                                 f"Homomorphic Encryption Standard allows at most "
                                 f"{HE_STANDARD_MAX_LOGQ[sec][POLY_MODULUS_DEGREES[-1]]} bits at N = "
                                 f"{POLY_MODULUS_DEGREES[-1]} and {sec}-bit security; lower depth or scale_bits")
            n = fits[0]
    if n // 2 < min_slots:
        raise ValueError(f"min_slots {min_slots} exceeds the {n // 2} slots of poly_modulus_degree {n}")
    if len(chain) >= 2 and chain[-1] < max(chain[:-1]):
        raise ValueError(f"coeff_mod_bit_sizes {chain}: the special prime (last, {chain[-1]} bits) must be at least "
                         f"as large as every other prime (largest {max(chain[:-1])} bits): SEAL's key switching "
                         f"(relinearisation, rotations) multiplies its noise by about 2^(largest - special); "
                         f"measured: a sum by rotations off by about 3 on values of about 1 with [60, 40, 40, 38]")
    try:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=chain)
    except RuntimeError as e:  # SEAL: "failed to find enough qualifying primes"
        raise ValueError(f"coeff_mod_bit_sizes {chain}: SEAL found too few primes = 1 mod 2N = {2 * n} of these "
                         f"sizes for N = {n} ({e}); use larger primes (scale_bits >= 25) or a smaller N") from e
    ctx.global_scale = 2.0 ** scale_bits
    if not relin:
        ctx = _without_relin_keys(ctx, 2.0 ** scale_bits)
    if galois:
        ctx.generate_galois_keys()
    return HEContext(context=ctx, scheme="ckks", poly_modulus_degree=n, coeff_mod_bit_sizes=tuple(chain),
                     security=sec, scale_bits=int(scale_bits))


def bfv_chain(poly_modulus_degree: int, *, security: int = 128) -> list:
    """Equal-sized primes filling the standard's bound for ``N``: ``ceil(bound / 60) + 1`` of them.

    The extra prime keeps the special (key-switching) prime small, so more of ``q`` holds the noise budget
    (the same sizes as SEAL's ``CoeffModulus::BFVDefault``, e.g. ``[36, 36, 37]``-like at ``N = 4096``).
    """
    bound = max_total_bits(poly_modulus_degree, security=security)
    k = max(2, math.ceil(bound / MAX_PRIME_BITS) + 1)
    size = bound // k
    if size < MIN_PRIME_BITS:
        raise ValueError(f"poly_modulus_degree {poly_modulus_degree} at {security}-bit security allows only {bound} "
                         f"bits, too few for two primes of {MIN_PRIME_BITS} bits; use N >= 2048")
    return [size] * k


def bfv_context(*, plain_modulus_bits: int, poly_modulus_degree: int, security: int = 128,
                coeff_mod_bit_sizes: Optional[Sequence[int]] = None, galois: bool = False,
                relin: bool = True) -> HEContext:
    """Build a BFV context for exact integer arithmetic modulo a batching prime ``t``.

    Args:
        plain_modulus_bits: bits of the plaintext prime ``t`` (``t = 1 mod 2N`` for batching), in
            ``[log2(2N) + 2, 60]``; values live in ``[-t/2, t/2)``.
        poly_modulus_degree: ``N``, one of 2048 .. 32768.
        security: 128, 192 or 256 bits.
        coeff_mod_bit_sizes: explicit chain (checked against the standard); default: the largest chain of equal
            primes the standard allows (:func:`bfv_chain`), which maximises the noise budget.
        galois: generate Galois keys (rotations).
        relin: keep relinearisation keys (TenSEAL always makes them; ``relin=False`` removes them).

    Returns:
        An :class:`HEContext` holding the secret key. At ``N = 2048`` the standard leaves so few bits that a
        ciphertext-ciphertext product exhausts the noise budget (see ``Client.noise_budget``); use ``N >= 4096``
        for multiplications.

    Raises:
        ValueError: an insecure chain, ``plain_modulus_bits`` out of range, no batching prime of that size, or a
            fresh ciphertext with no noise budget (measured).
    """
    import tenseal as ts
    from tenseal import sealapi
    sec = _check_security(security)
    n = _check_degree(poly_modulus_degree)
    lo = int(math.log2(2 * n)) + 2
    _check_int("plain_modulus_bits", plain_modulus_bits, lo, MAX_PRIME_BITS)
    chain = list(coeff_mod_bit_sizes) if coeff_mod_bit_sizes is not None else bfv_chain(n, security=sec)
    check_parameters(n, chain, security=sec)
    if plain_modulus_bits >= min(chain):
        raise ValueError(f"plain_modulus_bits {plain_modulus_bits} must be below the smallest prime of the chain "
                         f"({min(chain)} bits), or no noise budget is left")
    try:
        t = int(sealapi.PlainModulus.Batching(n, plain_modulus_bits).value())
    except Exception as e:
        raise ValueError(f"plain_modulus_bits {plain_modulus_bits}: no {plain_modulus_bits}-bit prime t = 1 mod "
                         f"{2 * n} exists; use more bits") from e
    ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=n, plain_modulus=t, coeff_mod_bit_sizes=chain)
    # a fresh ciphertext must have some noise budget, or nothing decrypts reliably: measure it. The budget of one
    # encryption is random (SEAL's fresh noise); at the edge it is 0 or 1 bit, so take the least of several
    decryptor = sealapi.Decryptor(ctx.seal_context().data, ctx.secret_key().data)
    fresh = min(decryptor.invariant_noise_budget(ts.bfv_vector(ctx, [0]).ciphertext()[0]) for _ in range(16))
    if fresh <= 0:
        raise ValueError(f"plain_modulus_bits {plain_modulus_bits} leaves a fresh ciphertext no noise budget with "
                         f"coeff_mod_bit_sizes {chain} at N = {n}; use fewer plain_modulus_bits or a larger N")
    if not relin:
        ctx = _without_relin_keys(ctx)
    if galois:
        ctx.generate_galois_keys()
    return HEContext(context=ctx, scheme="bfv", poly_modulus_degree=n, coeff_mod_bit_sizes=tuple(chain),
                     security=sec, plain_modulus=t)


def describe_context(context: Any) -> HEContext:
    """Wrap a (possibly public) ``tenseal.Context`` in an :class:`HEContext`, reading its parameters back.

    The security level recorded is the highest of 128/192/256 whose bound the chain satisfies.
    """
    from tenseal import sealapi  # noqa: F401  (registers SEAL's Modulus type with pybind11)
    key_parms = context.seal_context().data.key_context_data().parms()
    scheme = key_parms.scheme().name.lower()
    n = int(key_parms.poly_modulus_degree())
    chain = tuple(int(q.bit_count()) for q in key_parms.coeff_modulus())
    total = sum(chain)
    sec = max([s for s in HE_STANDARD_MAX_LOGQ if total <= HE_STANDARD_MAX_LOGQ[s].get(n, -1)], default=0)
    if scheme == "ckks":
        return HEContext(context=context, scheme="ckks", poly_modulus_degree=n, coeff_mod_bit_sizes=chain,
                         security=sec, scale_bits=int(round(math.log2(context.global_scale))))
    return HEContext(context=context, scheme="bfv", poly_modulus_degree=n, coeff_mod_bit_sizes=chain,
                     security=sec, plain_modulus=int(key_parms.plain_modulus().value()))
