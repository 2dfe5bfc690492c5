"""SEAL-level CKKS evaluation under TenSEAL's contexts (private to :mod:`mlsec_kit.crypto.he`).

TenSEAL's ``CKKSVector`` rescales after every multiplication; a linear layer evaluated as a sum of
ciphertext-times-plaintext products is cheaper and more precise when the products are added first and rescaled
once. :class:`Engine` does that with ``tenseal.sealapi`` (Microsoft SEAL's Python binding) on the SEAL context a
(public) TenSEAL context wraps. Ciphertexts travel as SEAL's own serialisation (:func:`ct_to_bytes`).
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Optional, Sequence

import numpy as np
import tenseal.sealapi as seal

__all__ = ["Engine", "engine_for", "ct_to_bytes", "ct_from_bytes", "ckks_vector_bytes", "seeded_symmetric_bytes",
           "effective_poly", "pow2"]

_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def ct_to_bytes(ct) -> bytes:
    """SEAL ciphertext -> bytes (sealapi saves to a file only: a memory-backed one where there is /dev/shm)."""
    fd, path = tempfile.mkstemp(suffix=".ct", dir=_TMP)
    os.close(fd)
    try:
        ct.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


def ct_from_bytes(sc, data: bytes):
    fd, path = tempfile.mkstemp(suffix=".ct", dir=_TMP)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ct = seal.Ciphertext()
        ct.load(sc, path)
        return ct
    finally:
        os.remove(path)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ckks_vector_bytes(ct, size: int, scale: float) -> bytes:
    """A SEAL ciphertext as a serialised ``tenseal.CKKSVector`` of ``size`` values (TenSEAL's ``CKKSVectorProto``:
    field 1 the packed sizes, field 2 the SEAL ciphertext, field 3 the vector's initial scale as a double), so that
    :func:`tenseal.ckks_vector_from` can load a ciphertext computed with SEAL directly (TenSEAL builds a vector from
    a SEAL ciphertext in C++ only)."""
    import struct
    data = ct if isinstance(ct, (bytes, bytearray)) else ct_to_bytes(ct)
    sizes = _varint(int(size))
    return (b"\x0a" + _varint(len(sizes)) + sizes + b"\x12" + _varint(len(data)) + bytes(data)
            + b"\x19" + struct.pack("<d", float(scale)))


def seeded_symmetric_bytes(eng, encryptor, values, scale: float) -> bytes:
    """Encode ``values`` (a full slot vector) at ``scale``, encrypt with the secret key, and save SEAL's seeded
    form (the uniformly random half replaced by its seed: half the bytes)."""
    p = seal.Plaintext()
    eng.encoder.encode(values, scale, p)
    fd, path = tempfile.mkstemp(suffix=".ct", dir=_TMP)
    os.close(fd)
    try:
        encryptor.encrypt_symmetric(p).save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


class Engine:
    """SEAL-level evaluator over a (public) tenseal context, with explicit rescaling so that sums of
    ciphertext-plaintext products are rescaled once."""

    def __init__(self, ctx):
        self.owner = ctx
        self.sc = ctx.seal_context().data
        self.ev = seal.Evaluator(self.sc)
        self.encoder = seal.CKKSEncoder(self.sc)
        self.slots = self.encoder.slot_count()
        self.scale = float(ctx.global_scale)
        self.rk = ctx.relin_keys().data if ctx.has_relin_keys() else None
        self.gk = ctx.galois_keys().data if ctx.has_galois_keys() else None

    def level(self, ct) -> int:
        return self.sc.get_context_data(ct.parms_id()).chain_index()

    def _q_last(self, ct) -> int:
        return self.sc.get_context_data(ct.parms_id()).parms().coeff_modulus()[-1].value()

    def plain(self, value, ct, scale: float, *, cache: Optional[dict] = None, key=None):
        """Encode ``value`` at ``ct``'s level and ``scale``; with ``cache`` and ``key``, encode once (the server's
        model weights are the same for every query)."""
        if cache is not None:
            k = (key, tuple(ct.parms_id()), scale)
            if k not in cache:
                cache[k] = self.plain(value() if callable(value) else value, ct, scale)
            return cache[k]
        p = seal.Plaintext()
        self.encoder.encode(value, ct.parms_id(), scale, p)
        return p

    def product_scale(self, ct) -> float:
        """Encoding scale of a plaintext factor so that the rescaled product lands on the global scale."""
        return self.scale * self._q_last(ct) / ct.scale

    def mul_plain(self, ct, value, scale: float, **cache):
        out = seal.Ciphertext()
        self.ev.multiply_plain(ct, self.plain(value, ct, scale, **cache), out)
        return out

    def match(self, ct, target):
        """``ct`` brought to ``target``'s level with exactly ``target``'s scale, by one plaintext product by 1.0
        encoded at the scale that makes the rescaled product land on ``target.scale`` (then a modulus switch).

        Overwriting ``ct.scale = target.scale`` instead is wrong by the relative gap between the scales, which is
        set by how far SEAL's primes (1 mod 2N) are from ``2^scale_bits``: 6e-4 at 30 bits, 3e-2 at 25 bits,
        a factor 2.7 at 20 bits (N = 8192). ``ct`` must have at least one level more than ``target``.
        """
        if self.level(ct) <= self.level(target):
            raise ValueError(f"match needs a ciphertext with more levels left ({self.level(ct)}) than the target "
                             f"({self.level(target)})")
        out = self.rescale(self.mul_plain(ct, 1.0, target.scale * self._q_last(ct) / ct.scale))
        if self.level(out) > self.level(target):
            self.ev.mod_switch_to_inplace(out, target.parms_id())
        out.scale = target.scale  # equal up to the last bit of the double
        return out

    def mask_slots(self, ct, keep, *, first_prime_bits: int):
        """Add fresh uniform noise to every slot of ``ct`` except ``keep`` (no level used), so that a client who
        decrypts all the slots learns the outputs and not the server's intermediate sums.

        Without it, a packed reply's other slots hold window sums of ``W2[r, k] * h_k`` from which the client reads
        W2 up to a per-column scale with one query. The noise is uniform in ``+-2^(headroom - 3)`` where
        ``headroom = first_prime_bits - log2(scale)`` bits is what the last level can hold (values must stay below
        ``2^(headroom - 1)``, so a masked slot keeps a factor 4 to overflow, which would corrupt every slot), drawn
        from a generator seeded by ``os.urandom`` on every call (the client must not predict it). This hides the
        values statistically, not perfectly: a slot's value is small beside the noise, and a client who sends the
        same input k times can average the masks down to about ``2^(headroom - 3) / sqrt(3 k)``. It is not circuit
        privacy either: the ciphertext noise of the reply still depends on the weights (SEAL has no noise flooding).
        """
        bits = max(int(first_prime_bits) - math.log2(ct.scale) - 3.0, 0.0)
        rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        noise = rng.uniform(-(2.0 ** bits), 2.0 ** bits, self.slots)
        noise[np.asarray(keep, dtype=int)] = 0.0
        self.ev.add_plain_inplace(ct, self.plain(noise.tolist(), ct, ct.scale))
        return ct

    def mask_shares(self, ct, blocks: int, period: int, *, first_prime_bits: int):
        """Mask ``ct`` so that each block of ``period`` slots ``[r * period, (r + 1) * period)``, ``r < blocks``, sums
        to what it summed to before, and no single slot tells anything useful: every slot gets fresh uniform noise
        (as in :meth:`mask_slots`), and each block's noise is shifted to sum to zero. The client, who adds up each
        block after decrypting, gets the block sums; a slot alone is its share of the sum plus noise. This
        replaces the last ``log2(period)`` rotate-and-add steps of a layer by a sum the client does in the clear.
        The noise stays within ``+-2^(headroom - 3)`` like :meth:`mask_slots`' (shares drawn in half that range,
        centred)."""
        bits = max(int(first_prime_bits) - math.log2(ct.scale) - 3.0, 0.0)
        rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        noise = rng.uniform(-(2.0 ** bits), 2.0 ** bits, self.slots)
        head = noise[: blocks * period].reshape(blocks, period) / 2
        noise[: blocks * period] = (head - head.mean(axis=1, keepdims=True)).ravel()
        self.ev.add_plain_inplace(ct, self.plain(noise.tolist(), ct, ct.scale))
        return ct

    def rescale(self, ct):
        self.ev.rescale_to_next_inplace(ct)
        return ct

    def add_plain(self, ct, value, **cache):
        self.ev.add_plain_inplace(ct, self.plain(value, ct, ct.scale, **cache))
        return ct

    def square(self, ct, *, inplace: bool = True):
        if inplace:
            self.ev.square_inplace(ct)
        else:
            out = seal.Ciphertext()
            self.ev.square(ct, out)
            ct = out
        self.ev.relinearize_inplace(ct, self.rk)
        return self.rescale(ct)

    def rotate(self, ct, steps: int, *, inplace: bool = False):
        """Left rotation of all the slots by ``steps`` (negative: right), with the Galois keys."""
        if inplace:
            self.ev.rotate_vector_inplace(ct, steps, self.gk)
            return ct
        out = seal.Ciphertext()
        self.ev.rotate_vector(ct, steps, self.gk, out)
        return out

    def rotate_sum(self, ct, steps: Sequence[int]):
        """ct + rot(ct, s1), then the same with s2, ... (left rotations)."""
        for s in steps:
            r = seal.Ciphertext()
            self.ev.rotate_vector(ct, s, self.gk, r)
            self.ev.add_inplace(ct, r)
        return ct

    def output_poly(self, ct, poly):
        """c0 + c1 x + c2 x^2 + c3 x^3 with every term brought to the same level and scale (depth 1 or 2).
        Terms negligible on the fit's interval are dropped (SEAL refuses a product with a zero plaintext)."""
        c, deg = effective_poly(poly)
        x2 = self.square(ct, inplace=False) if deg >= 2 else None
        if deg == 3:
            # c3 x, one level down, encoded so that its scale equals x^2's (both then lose the same prime)
            t = self.rescale(self.mul_plain(ct, c[3], x2.scale * self._q_last(ct) / ct.scale))
            t.scale = x2.scale  # equal up to the last bit of the double
            acc = seal.Ciphertext()
            self.ev.multiply(x2, t, acc)
            self.ev.relinearize_inplace(acc, self.rk)
            self.rescale(acc)
            if c[2] != 0.0:
                term = self.rescale(self.mul_plain(x2, c[2], acc.scale * self._q_last(x2) / x2.scale))
                term.scale = acc.scale
                self.ev.add_inplace(acc, term)
        elif deg == 2:
            acc = self.rescale(self.mul_plain(x2, c[2], self.product_scale(x2)))
        else:
            return self.add_plain(self.rescale(self.mul_plain(ct, c[1], self.product_scale(ct))), c[0])
        if c[1] != 0.0:
            lin = self.rescale(self.mul_plain(ct, c[1], acc.scale * self._q_last(ct) / ct.scale))
            self.ev.mod_switch_to_inplace(lin, acc.parms_id())
            lin.scale = acc.scale
            self.ev.add_inplace(acc, lin)
        return self.add_plain(acc, c[0])


def effective_poly(poly) -> tuple[list[float], int]:
    """Coefficients (padded to 4) with the terms below 1e-9 on the interval set to 0, and the degree left."""
    r = max(abs(poly.interval[0]), abs(poly.interval[1]), 1.0)
    c = [v if abs(v) * r ** k >= 1e-9 else 0.0 for k, v in enumerate(poly.coefficients)]
    c += [0.0] * (4 - len(c))
    deg = max((k for k in range(len(c)) if c[k] != 0.0 and k > 0), default=0)
    return c, deg


def pow2(n: int) -> int:
    return 1 << (int(n) - 1).bit_length()


def engine_for(party) -> Engine:
    """The :class:`Engine` over a :class:`~mlsec_kit.crypto.he.roles.Client`'s or ``Server``'s context, built once
    and kept on the party (an evaluator, an encoder and references to the keys; nothing secret is copied)."""
    eng = getattr(party, "_seal_engine", None)
    if eng is None or eng.owner is not party.he.context:
        eng = Engine(party.he.context)
        party._seal_engine = eng
    return eng
