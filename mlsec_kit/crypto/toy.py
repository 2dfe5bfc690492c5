"""A from-scratch Paillier cryptosystem, for intuition only. INSECURE: small keys, seeded randomness.

    *** DO NOT USE THIS TO PROTECT ANYTHING. ***  Keys are generated from a caller's seeded ``torch.Generator``
    (guessable by design, so that a textbook's numbers repeat), the default modulus is far below the 2048+ bits
    Paillier needs, and nothing is constant-time. :func:`paillier_keygen` warns (``UserWarning``) below 2048 bits.
    Use a maintained library (e.g. ``phe``) for real work.

Paillier (1999), "Public-Key Cryptosystems Based on Composite Degree Residuosity Classes", EUROCRYPT:
``n = p q``, ``g = n + 1``, ``lambda = lcm(p - 1, q - 1)``, ``mu = lambda^{-1} mod n``;
``Enc(m; r) = g^m r^n mod n^2``; ``Dec(c) = L(c^lambda mod n^2) mu mod n`` with ``L(u) = (u - 1) / n``.
It is additively homomorphic: ``Dec(c1 c2) = m1 + m2`` and ``Dec(c^k) = k m`` (mod ``n``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

SECURE_MODULUS_BITS = 2048
# deterministic Miller-Rabin bases: correct for every n < 3.3 * 10^24 (Sorenson & Webster 2015)
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (seeded for reproducibility), got "
                        f"{type(generator).__name__}")


def random_bits(bits: int, *, generator: torch.Generator) -> int:
    """A uniformly random integer in ``[0, 2^bits)`` drawn from ``generator`` (31 bits per draw)."""
    _check_generator(generator)
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be an int >= 1, got {bits!r}")
    chunks = torch.randint(0, 2 ** 31, (math.ceil(bits / 31),), generator=generator).tolist()
    value = 0
    for c in chunks:
        value = (value << 31) | int(c)
    return value >> (31 * len(chunks) - bits)


def _random_below(n: int, *, generator: torch.Generator) -> int:
    """Uniform in ``[0, n)`` by rejection."""
    bits = max(1, (n - 1).bit_length())
    while True:
        v = random_bits(bits, generator=generator)
        if v < n:
            return v


def is_probable_prime(n: int, *, rounds: int = 20, generator: Optional[torch.Generator] = None) -> bool:
    """Miller-Rabin: the 13 fixed bases (exact below 3.3e24), plus ``rounds`` random bases if ``generator``.

    Args:
        n: the integer to test.
        rounds: extra random bases (error probability at most ``4^-rounds`` for each composite).
        generator: source of the random bases; ``None`` uses the fixed bases only.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    bases = list(_MR_BASES)
    if generator is not None:
        bases += [2 + _random_below(n - 3, generator=generator) for _ in range(rounds)]
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int, *, generator: torch.Generator) -> int:
    """A random prime of exactly ``bits`` bits (top two bits set, so a product of two has ``2 bits`` bits)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 8:
        raise ValueError(f"bits must be an int >= 8, got {bits!r}")
    while True:
        candidate = random_bits(bits, generator=generator) | (3 << (bits - 2)) | 1
        if is_probable_prime(candidate, generator=generator):
            return candidate


@dataclass(frozen=True)
class PaillierPublicKey:
    """``n`` and ``g = n + 1``."""
    n: int

    @property
    def g(self) -> int:
        return self.n + 1

    @property
    def n_square(self) -> int:
        return self.n * self.n

    @property
    def bits(self) -> int:
        return self.n.bit_length()


@dataclass(frozen=True)
class PaillierPrivateKey:
    """The factors ``p, q`` and the decryption exponents ``lambda = lcm(p-1, q-1)``, ``mu = lambda^-1 mod n``."""
    public: PaillierPublicKey
    p: int
    q: int
    lam: int
    mu: int


def paillier_keygen(*, bits: int = 512, generator: torch.Generator) -> Tuple[PaillierPublicKey, PaillierPrivateKey]:
    """INSECURE toy Paillier key generation from two seeded random primes of ``bits / 2`` bits each.

    Args:
        bits: modulus size, an even int in [32, 4096]; below 2048 a ``UserWarning`` says the key is insecure.
        generator: a seeded ``torch.Generator`` (the key is as guessable as its seed).

    Returns:
        ``(public_key, private_key)`` with ``n`` of exactly ``bits`` bits.
    """
    _check_generator(generator)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 32 <= bits <= 4096 or bits % 2:
        raise ValueError(f"bits must be an even int in [32, 4096], got {bits!r}")
    if bits < SECURE_MODULUS_BITS:
        warnings.warn(f"INSECURE toy Paillier key: a {bits}-bit modulus is factorable; real use needs >= "
                      f"{SECURE_MODULUS_BITS} bits and a maintained library", UserWarning, stacklevel=2)
    while True:
        p = random_prime(bits // 2, generator=generator)
        q = random_prime(bits // 2, generator=generator)
        n = p * q
        if p != q and math.gcd(n, (p - 1) * (q - 1)) == 1 and n.bit_length() == bits:
            break
    lam = math.lcm(p - 1, q - 1)
    public = PaillierPublicKey(n)
    mu = pow(_L(pow(public.g, lam, public.n_square), n), -1, n)
    return public, PaillierPrivateKey(public=public, p=p, q=q, lam=lam, mu=mu)


def _L(u: int, n: int) -> int:
    return (u - 1) // n


def _check_message(public: PaillierPublicKey, m: int) -> int:
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"m must be an int, got {type(m).__name__}")
    n = public.n
    if not -(n // 2) <= m < n:
        raise ValueError(f"m must be in [-(n // 2), n) = [{-(n // 2)}, {n}); negatives are encoded as n + m")
    return m % n


def paillier_encrypt(public: PaillierPublicKey, m: int, *, generator: Optional[torch.Generator] = None,
                     r: Optional[int] = None) -> int:
    """``Enc(m; r) = g^m r^n mod n^2`` with ``g = n + 1`` (so ``g^m = 1 + m n mod n^2``).

    Args:
        public: the public key.
        m: the message, an int in ``[-(n // 2), n)``; negatives are encoded as ``n + m``, so with the default
            ``signed=True`` decryption a message in ``(n // 2, n)`` reads back as ``m - n`` (keep messages in
            ``[-(n // 2), n // 2]`` for an exact round trip).
        generator: draws ``r`` uniformly from the units mod ``n`` (needed unless ``r`` is given).
        r: an explicit randomiser in ``[1, n)`` coprime to ``n`` (for teaching and tests).

    Returns:
        The ciphertext, an int in ``[0, n^2)``.
    """
    n, n2 = public.n, public.n_square
    m = _check_message(public, m)
    r = _randomiser(public, generator, r)
    return (1 + m * n) % n2 * pow(r, n, n2) % n2


def _randomiser(public: PaillierPublicKey, generator: Optional[torch.Generator], r: Optional[int]) -> int:
    """``r`` checked, or drawn uniformly from the units mod ``n``."""
    n = public.n
    if r is None:
        if generator is None:
            raise ValueError("give generator= (a seeded torch.Generator) or an explicit r=")
        _check_generator(generator)
        while True:
            r = 1 + _random_below(n - 1, generator=generator)
            if math.gcd(r, n) == 1:
                return r
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r < n or math.gcd(r, n) != 1:
        raise ValueError("r must be an int in [1, n) coprime to n")
    return r


def paillier_rerandomize(public: PaillierPublicKey, c: int, *, generator: Optional[torch.Generator] = None,
                         r: Optional[int] = None) -> int:
    """``c r^n mod n^2`` for a fresh unit ``r``: an encryption of the same message with fresh randomness.

    A server that computes ``prod c_i^{w_i}`` on a client's ciphertexts and sends it back unchanged leaks its
    weights through the randomness ``prod r_i^{n w_i}`` (the client knows its ``r_i``); re-randomising the
    result before replying removes that (the circuit privacy of Paillier).

    Args:
        public: the public key.
        c: a ciphertext in ``(0, n^2)``.
        generator: draws ``r`` uniformly from the units mod ``n`` (needed unless ``r`` is given); the server's
            own generator, which the client must not know.
        r: an explicit randomiser in ``[1, n)`` coprime to ``n`` (for teaching and tests).
    """
    c = _check_ciphertext(public, c)
    r = _randomiser(public, generator, r)
    return c * pow(r, public.n, public.n_square) % public.n_square


def _check_ciphertext(public: PaillierPublicKey, c: int, name: str = "c") -> int:
    if isinstance(c, bool) or not isinstance(c, int):
        raise TypeError(f"{name} must be an int ciphertext, got {type(c).__name__}")
    if not 0 < c < public.n_square:
        raise ValueError(f"{name} must be in (0, n^2)")
    return c


def paillier_decrypt(private: PaillierPrivateKey, c: int, *, signed: bool = True) -> int:
    """``Dec(c) = L(c^lambda mod n^2) mu mod n``; with ``signed``, results above ``n // 2`` map to negatives."""
    public = private.public
    c = _check_ciphertext(public, c)
    n = public.n
    m = _L(pow(c, private.lam, public.n_square), n) * private.mu % n
    return m - n if signed and m > n // 2 else m


def paillier_add(public: PaillierPublicKey, c1: int, c2: int) -> int:
    """Homomorphic addition: ``c1 c2 mod n^2`` decrypts to ``m1 + m2 mod n``."""
    return _check_ciphertext(public, c1, "c1") * _check_ciphertext(public, c2, "c2") % public.n_square


def paillier_mul_scalar(public: PaillierPublicKey, c: int, k: int) -> int:
    """Multiplication by a plaintext integer: ``c^k mod n^2`` decrypts to ``k m mod n`` (negative ``k`` allowed)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    return pow(_check_ciphertext(public, c), k % public.n, public.n_square)
