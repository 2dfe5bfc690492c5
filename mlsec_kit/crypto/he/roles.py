"""Who holds which key: a client with the secret key, a server with only the public context, and the wire.

The client builds a context (:func:`~mlsec_kit.crypto.he.params.ckks_context`), sends its *public* part (public
key, relinearisation and Galois keys, no secret key) and its ciphertexts as bytes; the server deserialises them,
computes on ciphertexts only, and sends ciphertext bytes back; only the client can decrypt. A :class:`Wire` counts
the bytes each way. This is the outsourced-inference setting of CryptoNets (Gilad-Bachrach et al. 2016) and
TenSEAL (Benaissa et al. 2021).

CKKS levels: a fresh ciphertext can afford :attr:`HEContext.depth` multiplications in sequence; each
multiplication (by a ciphertext or a plaintext) is followed by a rescale that drops one prime. :func:`depth_left`
reads what is left from the ciphertext, and :func:`check_depth` refuses an operation that needs more, before SEAL
fails with "scale out of bounds". Levels are not the only budget: every value must also stay below
``2^(integer_bits - 1)`` (:attr:`HEContext.integer_bits`) at every step, and an overflow in one slot corrupts all.

Security. The server holds no secret key and sees ciphertexts (IND-CPA under RLWE), the public context and the
vector sizes TenSEAL serialises in the clear. CKKS is not IND-CPA^D (Li & Micciancio 2021): a decryption carries
the ciphertext's noise, and decryptions of server-computed ciphertexts handed back to the server can reveal the
secret key; round them or add noise before they leave the client. SEAL/TenSEAL give no circuit privacy (the
noise of a result depends on what the server computed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Sequence, Tuple, Union

import numpy as np
import torch

from .params import HEContext, describe_context

LAYOUTS = ("vector", "rows", "columns")


@dataclass
class Wire:
    """Bytes crossing between client and server, each message logged as ``(direction, what, nbytes)``."""
    log: List[Tuple[str, str, int]] = field(default_factory=list)

    def record(self, direction: str, what: str, nbytes: int) -> None:
        if direction not in ("to_server", "to_client"):
            raise ValueError(f"direction must be 'to_server' or 'to_client', got {direction!r}")
        self.log.append((direction, what, int(nbytes)))

    @property
    def to_server(self) -> int:
        """Bytes the client sent to the server (public context included)."""
        return sum(n for d, _, n in self.log if d == "to_server")

    @property
    def to_client(self) -> int:
        """Bytes the server sent back to the client."""
        return sum(n for d, _, n in self.log if d == "to_client")

    def reset(self) -> None:
        self.log.clear()


def _is_ciphertext(obj: Any) -> bool:
    import tenseal as ts
    return isinstance(obj, (ts.CKKSVector, ts.BFVVector))


def _check_ciphertext(name: str, ct: Any) -> None:
    if not _is_ciphertext(ct):
        raise TypeError(f"{name} must be a tenseal CKKSVector or BFVVector, got {type(ct).__name__}")


def depth_left(ct: Any) -> int:
    """Multiplicative levels a CKKS ciphertext (or the least of a list of them) can still afford.

    Args:
        ct: a ``tenseal.CKKSVector`` or a list of them.

    Returns:
        Number of rescale primes left in its modulus chain (0 means no further multiplication).
    """
    import tenseal as ts
    if isinstance(ct, (list, tuple)):
        if not ct:
            raise ValueError("ct is an empty list")
        return min(depth_left(c) for c in ct)
    if not isinstance(ct, ts.CKKSVector):
        raise TypeError(f"depth_left applies to CKKS ciphertexts (tenseal.CKKSVector), got {type(ct).__name__}")
    return int(ct.ciphertext()[0].coeff_modulus_size()) - 1


def check_depth(ct: Any, needed: int, *, operation: str = "this operation") -> None:
    """Raise ``ValueError`` if ``ct`` has fewer than ``needed`` levels left (CKKS only; BFV passes).

    Args:
        ct: a ciphertext or a list of them.
        needed: levels the operation consumes.
        operation: a name for the message.
    """
    import tenseal as ts
    first = ct[0] if isinstance(ct, (list, tuple)) and ct else ct
    if not isinstance(first, ts.CKKSVector):
        return
    left = depth_left(ct)
    if needed > left:
        raise ValueError(f"depth exceeded: {operation} needs {needed} multiplicative level(s) but the ciphertext has "
                         f"{left} left; build the context with a larger depth= (longer coeff_mod_bit_sizes)")


def polyval_depth(degree: int) -> int:
    """Levels TenSEAL's ``polyval`` consumes for a polynomial of ``degree`` >= 1: ``ceil(log2(degree + 1))``."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an int >= 0, got {degree!r}")
    return 0 if degree == 0 else math.ceil(math.log2(degree + 1))


def _as_array(name: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # pragma: no cover - defensive
            raise TypeError(f"{name} must be a tensor, array or list of numbers") from e
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def _serialize(ct: Any) -> Union[bytes, List[bytes]]:
    if isinstance(ct, (list, tuple)):
        for i, c in enumerate(ct):
            _check_ciphertext(f"ct[{i}]", c)
        return [c.serialize() for c in ct]
    _check_ciphertext("ct", ct)
    return ct.serialize()


def _deserialize(he: HEContext, data: Any) -> Any:
    import tenseal as ts
    if isinstance(data, (list, tuple)):
        return [_deserialize(he, d) for d in data]
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes (or a list of bytes) from send(), got {type(data).__name__}")
    if he.scheme == "ckks":
        return ts.ckks_vector_from(he.context, bytes(data))
    return ts.bfv_vector_from(he.context, bytes(data))


def _seal_rotate(eng: Any, ct: Any, steps: int) -> Any:
    from tenseal import sealapi
    out = sealapi.Ciphertext()
    eng.ev.rotate_vector(ct, steps, eng.gk, out)
    return out


def _nbytes(data: Any) -> int:
    return sum(len(d) for d in data) if isinstance(data, list) else len(data)


class Client:
    """The data owner: holds the secret key, encrypts, decrypts, and sends the public context.

    Args:
        context: an :class:`HEContext` holding the secret key.
        wire: a :class:`Wire` to count bytes on (a new one by default; share it with the :class:`Server`).
    """

    def __init__(self, context: HEContext, *, wire: Wire | None = None):
        if not isinstance(context, HEContext):
            raise TypeError(f"context must be an HEContext (from ckks_context/bfv_context), got "
                            f"{type(context).__name__}")
        if not context.context.is_private():
            raise ValueError("context holds no secret key; a Client needs the context that ckks_context() built")
        self.he = context
        self.wire = wire if wire is not None else Wire()

    @property
    def slots(self) -> int:
        return self.he.slots

    def public_context(self, *, galois: bool = True) -> bytes:
        """Serialised public context (public, relinearisation and Galois keys, no secret key), counted on the wire.

        Args:
            galois: send the Galois (rotation) keys; ``galois=False`` sends a context a tenth the size, enough for
                ``"simd"`` inference and everything without rotations.
        """
        data = self.he.public_bytes(galois=galois)
        self.wire.record("to_server", "public context", len(data))
        return data

    def _rows(self, x: Any, layout: str) -> tuple:
        """``x`` checked (layout, shape, slots, finiteness, magnitude) and split into the vectors to encrypt."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        arr = _as_array("x", x)
        want = 1 if layout == "vector" else 2
        if arr.ndim != want:
            raise ValueError(f"x must be {want}-D for layout={layout!r}, got shape {tuple(arr.shape)}")
        if layout == "columns":
            arr = arr.T
        rows = [arr] if layout == "vector" else list(arr)
        length = arr.shape[-1]
        if length > self.slots:
            raise ValueError(f"x: a vector of length {length} does not fit the context's {self.slots} slots "
                             f"(poly_modulus_degree {self.he.poly_modulus_degree}); split it or use a larger N")
        if length == 0:
            raise ValueError("x is empty")
        if not np.all(np.isfinite(arr)):
            raise ValueError("x must be finite (no NaN or infinity)")
        if self.he.scheme == "ckks":
            bound = 2.0 ** (self.he.integer_bits - 1)
            if np.abs(arr).max() >= bound:
                raise ValueError(f"x: |values| must stay below 2^(integer_bits - 1) = {bound:g} (first prime "
                                 f"{self.he.coeff_mod_bit_sizes[0]} bits, scale 2^{self.he.scale_bits}), got "
                                 f"max |x| = {np.abs(arr).max():g}; an overflow in one slot corrupts all of them")
        else:
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"x must hold integers for a BFV context, got dtype {arr.dtype}")
            t = self.he.plain_modulus
            if arr.size and (arr.min() < -(t // 2) or arr.max() > t // 2):
                raise ValueError(f"x: BFV values must lie in [-{t // 2}, {t // 2}] (plain modulus {t})")
        return arr, rows

    def encrypt(self, x: Any, *, layout: str = "vector") -> Any:
        """Encrypt a vector, or a matrix row by row or column by column.

        Args:
            x: numbers, a 1-D tensor/array (``layout="vector"``) or a 2-D one (``"rows"``: one ciphertext per row,
                e.g. per image; ``"columns"``: one per column, e.g. one feature of many images, SIMD batching).
                Not modified. Integers for BFV.
            layout: ``"vector"``, ``"rows"`` or ``"columns"``.

        Returns:
            A ciphertext (``"vector"``) or a list of ciphertexts.

        Shape:
            ``x``: ``(n,)`` with ``n <= slots`` or ``(m, n)``; each encrypted vector must fit ``slots``.
        """
        import tenseal as ts
        arr, rows = self._rows(x, layout)
        if self.he.scheme == "ckks":
            cts = [ts.ckks_vector(self.he.context, r.astype(np.float64).tolist()) for r in rows]
        else:
            cts = [ts.bfv_vector(self.he.context, r.astype(np.int64).tolist()) for r in rows]
        return cts[0] if layout == "vector" else cts

    def send_encrypted(self, x: Any, *, layout: str = "vector") -> Union[bytes, List[bytes]]:
        """Encrypt and serialise for the server in one step, counting the bytes: what :meth:`encrypt` then
        :meth:`send` give, at half the size for CKKS.

        The client holds the secret key, so it can encrypt symmetrically, and SEAL then stores the uniformly random
        half of each ciphertext as the seed that generates it: measured at N = 8192 with four primes, 159 KB
        instead of 322 KB and 6 instead of 11 CPU ms per ciphertext. The server loads it as an ordinary
        ciphertext (:meth:`Server.receive`). Symmetric RLWE encryption is IND-CPA like the public-key one. BFV
        falls back to :meth:`encrypt` + :meth:`send`.

        Args and Shape: as :meth:`encrypt`.
        """
        if self.he.scheme != "ckks":
            return self.send(self.encrypt(x, layout=layout))
        from ._seal import ckks_vector_bytes, engine_for, seeded_symmetric_bytes
        _, rows = self._rows(x, layout)
        eng = engine_for(self)
        if getattr(self, "_symmetric", None) is None:
            from tenseal import sealapi
            self._symmetric = sealapi.Encryptor(eng.sc, self.he.context.secret_key().data)
        scale = float(self.he.context.global_scale)
        out = []
        for r in rows:  # tiled over the slots as TenSEAL lays out a vector of this size
            tiled = np.resize(r.astype(np.float64), eng.slots).tolist()
            out.append(ckks_vector_bytes(seeded_symmetric_bytes(eng, self._symmetric, tiled, scale), r.size, scale))
        self.wire.record("to_server", "ciphertext", sum(map(len, out)))
        return out[0] if layout == "vector" else out

    def decrypt(self, ct: Any, *, layout: str = "vector") -> torch.Tensor:
        """Decrypt a ciphertext or a list of them.

        Args:
            ct: a ciphertext or a list (as :meth:`encrypt` or :meth:`receive` return).
            layout: for a list, ``"rows"`` stacks the vectors as rows, ``"columns"`` as columns.

        Returns:
            A float64 tensor (int64 for BFV): 1-D for one ciphertext, 2-D for a list.
        """
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        dtype = torch.float64 if self.he.scheme == "ckks" else torch.int64
        if isinstance(ct, (list, tuple)):
            for i, c in enumerate(ct):
                _check_ciphertext(f"ct[{i}]", c)
            out = torch.tensor([c.decrypt(self.he.context.secret_key()) for c in ct], dtype=dtype)
            return out.T.contiguous() if layout == "columns" else out
        _check_ciphertext("ct", ct)
        return torch.tensor(ct.decrypt(self.he.context.secret_key()), dtype=dtype)

    def noise_budget(self, ct: Any) -> int:
        """BFV only: bits of invariant noise budget left in ``ct`` (SEAL's ``invariant_noise_budget``).

        Each operation spends some; at 0 the ciphertext no longer decrypts correctly (a multiplication spends
        roughly ``log2 t`` plus a few bits). Needs the secret key, so only the client can read it.
        """
        import tenseal as ts
        from tenseal import sealapi
        if not isinstance(ct, ts.BFVVector):
            raise TypeError(f"noise_budget applies to BFV ciphertexts (tenseal.BFVVector), got {type(ct).__name__}; "
                            f"for CKKS use depth_left")
        decryptor = sealapi.Decryptor(self.he.context.seal_context().data, self.he.context.secret_key().data)
        return int(min(decryptor.invariant_noise_budget(c) for c in ct.ciphertext()))

    def send(self, ct: Any) -> Union[bytes, List[bytes]]:
        """Serialise ciphertext(s) for the server, counting the bytes."""
        data = _serialize(ct)
        self.wire.record("to_server", "ciphertext", _nbytes(data))
        return data

    def receive(self, data: Any) -> Any:
        """Deserialise the server's answer under the client's (secret) context."""
        return _deserialize(self.he, data)


class Server:
    """The model owner / compute service: holds only the public context, computes on ciphertexts.

    Args:
        public_context: bytes from :meth:`Client.public_context`. A context holding a secret key is refused.
        wire: the :class:`Wire` shared with the client (a new one by default).
    """

    def __init__(self, public_context: bytes, *, wire: Wire | None = None):
        import tenseal as ts
        if not isinstance(public_context, (bytes, bytearray)):
            raise TypeError(f"public_context must be bytes from Client.public_context(), got "
                            f"{type(public_context).__name__}")
        ctx = ts.context_from(bytes(public_context))
        if ctx.is_private():
            raise ValueError("public_context holds the secret key; a server must get only Client.public_context()")
        self.he = describe_context(ctx)
        self.wire = wire if wire is not None else Wire()

    @property
    def slots(self) -> int:
        return self.he.slots

    def receive(self, data: Any) -> Any:
        """Deserialise the client's ciphertext bytes (or list of bytes) under the public context."""
        return _deserialize(self.he, data)

    def send(self, ct: Any) -> Union[bytes, List[bytes]]:
        """Serialise result ciphertext(s) for the client, counting the bytes."""
        data = _serialize(ct)
        self.wire.record("to_client", "ciphertext", _nbytes(data))
        return data

    def decrypt(self, *args: Any, **kwargs: Any) -> None:
        """Always refused: the server holds no secret key."""
        raise PermissionError("the server holds no secret key: only the Client that built the context can decrypt")

    # --- computations on ciphertexts, each checking levels and shapes first ---------------------------------
    def _galois(self, operation: str) -> None:
        if not self.he.context.has_galois_keys():
            raise ValueError(f"{operation} needs Galois keys (rotations); build the context with galois=True")

    def _operand(self, name: str, b: Any, size: int) -> Any:
        if _is_ciphertext(b):
            if b.size() != size:
                raise ValueError(f"{name} has size {b.size()}, the ciphertext has size {size}")
            return b
        arr = _as_array(name, b)
        if arr.ndim == 0:
            return arr.item()
        if arr.shape != (size,):
            raise ValueError(f"{name} must be a scalar or have shape ({size},), got {tuple(arr.shape)}")
        return arr.tolist()

    def _tiled(self, a: Any, values: list, operation: str) -> Any:
        """``a + values`` or ``a * values`` (CKKS) with the plaintext tiled the way TenSEAL lays out ``a``.

        TenSEAL stores a vector of size n repeated with period n over all N/2 slots and its rotation-based operations
        (``sum``, ``dot``, ``matmul``) read the copies; its own ``a + list`` / ``a * list`` encode the list in the
        first copy only, so a later sum, dot or matmul came out wrong (e.g. add a vector, then matmul: errors of
        order 1 on values of order 1). Here the plaintext is encoded with the same tiling and applied with SEAL.
        """
        from ._seal import ckks_vector_bytes, engine_for
        eng = engine_for(self)
        ct = a.ciphertext()[0]
        tiled = np.resize(np.asarray(values, dtype=np.float64), eng.slots).tolist()
        if operation == "add":
            eng.add_plain(ct, tiled)
        else:  # multiply by a plaintext at the vector's scale, then rescale (as TenSEAL's auto-rescale does)
            ct = eng.rescale(eng.mul_plain(ct, tiled, float(self.he.context.global_scale)))
        return self.receive(ckks_vector_bytes(ct, a.size(), self.he.context.global_scale))

    def _same_level(self, a: Any, b: Any, operation: str) -> None:
        """Refuse two CKKS ciphertexts at different levels when the primes drift from the scale by more than 0.1%:
        TenSEAL then mod-switches one and declares the scales equal, which is off by the primes' drift."""
        import tenseal as ts
        if isinstance(a, ts.CKKSVector) and isinstance(b, ts.CKKSVector) and depth_left(a) != depth_left(b) \
                and self.he.scale_drift > 1e-3:
            raise ValueError(f"{operation}: operands at different levels ({depth_left(a)} and {depth_left(b)} left) "
                             f"while this context's rescale primes drift by {100 * self.he.scale_drift:.2g}% from "
                             f"2^{self.he.scale_bits}; TenSEAL would declare their scales equal and be off by that "
                             f"much. Bring both to the same level (the same number of multiplications) or use a "
                             f"larger scale (30 bits or more)")

    def add(self, a: Any, b: Any) -> Any:
        """``a + b`` for a ciphertext ``a`` and a ciphertext, vector or scalar ``b`` (no level used)."""
        _check_ciphertext("a", a)
        b = self._operand("b", b, a.size())
        self._same_level(a, b, "add")
        if isinstance(b, list) and self.he.scheme == "ckks":
            return self._tiled(a, b, "add")
        return a + b

    def multiply(self, a: Any, b: Any) -> Any:
        """``a * b`` elementwise, ``b`` a ciphertext, vector or scalar: one level (CKKS)."""
        _check_ciphertext("a", a)
        b = self._operand("b", b, a.size())
        check_depth(a, 1, operation="multiply")
        if _is_ciphertext(b):
            check_depth(b, 1, operation="multiply")
            self._same_level(a, b, "multiply")
            if not self.he.context.has_relin_keys():
                raise ValueError("multiply of two ciphertexts needs relinearisation keys in the public context; "
                                 "build it with ckks_context(..., relin=True)")
        elif isinstance(b, list) and self.he.scheme == "ckks":
            return self._tiled(a, b, "multiply")
        return a * b

    def dot(self, a: Any, b: Any) -> Any:
        """Inner product of ciphertext ``a`` with a ciphertext or plaintext vector ``b``: one level, rotations."""
        _check_ciphertext("a", a)
        b = self._operand("b", b, a.size())
        if not isinstance(b, (list, tuple)) and not _is_ciphertext(b):
            raise ValueError(f"b must be a vector of size {a.size()} or a ciphertext, not a scalar")
        self._galois("dot")
        check_depth(a, 1, operation="dot")
        return a.dot(b)

    def matmul(self, a: Any, matrix: Any) -> Any:
        """Vector-matrix product ``a @ matrix`` with a plaintext matrix: one level, rotations.

        Shape:
            ``a``: ciphertext of size ``n``; ``matrix``: ``(n, m)``; result: ciphertext of size ``m``.
        """
        _check_ciphertext("a", a)
        arr = _as_array("matrix", matrix)
        if arr.ndim != 2 or arr.shape[0] != a.size():
            raise ValueError(f"matrix must have shape ({a.size()}, m) to multiply a ciphertext of size {a.size()}, "
                             f"got {tuple(arr.shape)}")
        self._galois("matmul")
        check_depth(a, 1, operation="matmul")
        return a.mm(arr.astype(np.float64).tolist())

    def polyval(self, a: Any, coefficients: Sequence[float]) -> Any:
        """``sum_i c_i a^i`` elementwise (coefficients lowest degree first): ``ceil(log2(degree + 1))`` levels."""
        _check_ciphertext("a", a)
        coeffs = _as_array("coefficients", coefficients)
        if coeffs.ndim != 1 or coeffs.size < 2:
            raise ValueError(f"coefficients must be a 1-D list of at least 2 (degree >= 1; for a constant add it), "
                             f"got shape {tuple(coeffs.shape)}")
        check_depth(a, polyval_depth(coeffs.size - 1), operation=f"polyval of degree {coeffs.size - 1}")
        return a.polyval(coeffs.astype(np.float64).tolist())

    def rotate(self, a: Any, steps: int) -> Any:
        """Cyclic rotation of an encrypted CKKS vector: ``out[i] = a[(i + steps) mod n]`` (left for ``steps > 0``), with
        Galois keys and no level used.

        TenSEAL keeps a vector of size ``n`` repeated with period ``n`` over the N/2 slots, so one SEAL slot rotation
        by ``steps mod n`` rotates every copy; SEAL composes it from the power-of-two rotations whose Galois keys
        the context holds (at most about log2(N/2) key switchings, each adding a little noise).

        Args:
            a: a CKKS ciphertext of size ``n``.
            steps: an int with ``-n < steps < n``.
        """
        from ._seal import ckks_vector_bytes, engine_for
        import tenseal as ts
        _check_ciphertext("a", a)
        if not isinstance(a, ts.CKKSVector):
            raise TypeError(f"rotate applies to CKKS ciphertexts (tenseal.CKKSVector), got {type(a).__name__}")
        n = a.size()
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not -n < steps < n:
            raise ValueError(f"steps must be an int with {-n} < steps < {n} (the vector's size), got {steps!r}")
        self._galois("rotate")
        k = int(steps) % n
        if k == 0:
            return a.copy()
        eng = engine_for(self)
        out = _seal_rotate(eng, a.ciphertext()[0], k)
        return self.receive(ckks_vector_bytes(out, n, self.he.context.global_scale))

    def sum(self, a: Any) -> Any:
        """Sum of the slots (rotations, no level)."""
        _check_ciphertext("a", a)
        self._galois("sum")
        return a.sum()
