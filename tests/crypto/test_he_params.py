"""HE parameter selection and checks against the Homomorphic Encryption Standard (and SEAL's own refusal)."""
import pytest
import torch

ts = pytest.importorskip("tenseal")

from mlsec_kit.crypto.he import (HE_STANDARD_MAX_LOGQ, POLY_MODULUS_DEGREES, Client, bfv_chain, bfv_context,
                                 check_parameters, ckks_chain, ckks_context, depth_left, max_total_bits)


def test_standard_table_shape_and_monotone():
    assert set(HE_STANDARD_MAX_LOGQ) == {128, 192, 256}
    for sec, row in HE_STANDARD_MAX_LOGQ.items():
        assert list(row) == list(POLY_MODULUS_DEGREES)
        values = [row[n] for n in POLY_MODULUS_DEGREES]
        assert all(b > a for a, b in zip(values, values[1:]))  # larger ring, larger modulus allowed
    for n in POLY_MODULUS_DEGREES:  # more security, smaller modulus allowed
        assert HE_STANDARD_MAX_LOGQ[128][n] > HE_STANDARD_MAX_LOGQ[192][n] > HE_STANDARD_MAX_LOGQ[256][n]


@pytest.mark.parametrize("n", [4096, 8192])
def test_128_bit_bound_is_exactly_seals(n):
    """SEAL enforces the 128-bit row itself: the bound builds, one bit more is refused (tersely)."""
    bound = max_total_bits(n)
    k = -(-bound // 60)
    chain = [bound // k] * k
    chain[-1] += bound - sum(chain)
    ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=chain)
    over = list(chain)
    over[0] += 1
    with pytest.raises(ValueError, match="not set correctly"):
        ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=n, coeff_mod_bit_sizes=over)
    check_parameters(n, chain)
    with pytest.raises(ValueError, match=str(bound)):
        check_parameters(n, over)


def test_insecure_set_refused_with_bound_n_security_and_total():
    with pytest.raises(ValueError) as e:
        ckks_context(poly_modulus_degree=4096, coeff_mod_bit_sizes=[60, 40, 40, 60], galois=False)
    msg = str(e.value)
    for part in ("109", "4096", "128", "200", "insecure"):
        assert part in msg
    # 200 bits fit N = 8192 at 128-bit security but not at 192-bit (152)
    ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], galois=False, relin=False)
    with pytest.raises(ValueError, match="152"):
        ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], security=192, galois=False)


def test_chain_from_depth_and_scale():
    assert ckks_chain(depth=3, scale_bits=30) == [50, 30, 30, 30, 50]
    assert ckks_chain(depth=1, scale_bits=50) == [60, 50, 60]
    assert ckks_chain(depth=0, scale_bits=40) == [60, 60]


@pytest.mark.parametrize("depth,scale_bits,security,min_slots", [
    (1, 20, 128, 1), (2, 30, 128, 1), (2, 30, 256, 1), (1, 20, 128, 4000), (4, 40, 128, 1)])
def test_smallest_secure_degree_is_chosen(depth, scale_bits, security, min_slots):
    he = ckks_context(depth=depth, scale_bits=scale_bits, security=security, min_slots=min_slots, galois=False,
                      relin=False)
    n = he.poly_modulus_degree
    assert he.total_bits <= HE_STANDARD_MAX_LOGQ[security][n]
    assert he.slots == n // 2 >= min_slots
    assert list(he.coeff_mod_bit_sizes) == ckks_chain(depth=depth, scale_bits=scale_bits)
    if n > 1024:  # the next smaller degree would not do
        smaller = n // 2
        assert he.total_bits > HE_STANDARD_MAX_LOGQ[security][smaller] or smaller // 2 < min_slots
    assert he.depth == depth and he.scale_bits == scale_bits and he.security == security
    assert he.context.global_scale == 2.0 ** scale_bits


def test_context_depth_is_what_a_ciphertext_gets_and_the_kit_refuses_one_more():
    he = ckks_context(depth=2, scale_bits=30, galois=False)
    client = Client(he)
    ct = client.encrypt([0.5, -1.5, 2.0])
    assert depth_left(ct) == he.depth == 2
    sq = ct * ct
    assert depth_left(sq) == 1
    quad = sq * sq
    assert depth_left(quad) == 0
    assert client.decrypt(quad).tolist() == pytest.approx([0.0625, 5.0625, 16.0], abs=1e-2)
    with pytest.raises(ValueError, match="scale out of bounds"):  # what TenSEAL says without the kit
        quad * quad


@pytest.mark.parametrize("kwargs,match", [
    (dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=[61, 40, 61]), "60"),
    (dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 19, 40]), r"\[20, 60\]"),
    (dict(depth=2, scale_bits=19), "scale_bits"),
    (dict(depth=2, scale_bits=61), "scale_bits"),
    (dict(depth=3, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60]), "depth"),
    (dict(depth=-1), "depth"),
    (dict(coeff_mod_bit_sizes=[60, 40, 60]), "poly_modulus_degree"),
    (dict(), "depth"),
    (dict(depth=1, security=100), "security"),
    (dict(depth=1, poly_modulus_degree=3000), "poly_modulus_degree"),
    (dict(depth=1, poly_modulus_degree=1024), "insecure"),
    (dict(depth=30, scale_bits=50), "no poly_modulus_degree fits"),
    (dict(depth=1, min_slots=0), "min_slots"),
    (dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=[30, 40, 30], scale_bits=40), "first prime"),
])
def test_bad_parameters_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ckks_context(galois=False, **kwargs)


def test_depth_equal_to_chain_minus_two_is_accepted():
    he = ckks_context(depth=2, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], galois=False)
    assert he.depth == 2 and he.scale_bits == 40


def test_public_and_secret_bytes():
    he = ckks_context(depth=1, scale_bits=20, galois=False)
    pub = ts.context_from(he.public_bytes())
    assert pub.is_public() and not pub.has_secret_key() and pub.has_relin_keys()
    sec = ts.context_from(he.secret_bytes())
    assert sec.has_secret_key()
    # the ciphertext size a reader is shown is that of a real fresh ciphertext: 2 polynomials x N x primes
    raw = 2 * he.poly_modulus_degree * (len(he.coeff_mod_bit_sizes) - 1) * 8
    assert 0.5 * raw < he.ciphertext_bytes() <= raw + 1024
    s = he.summary()
    assert s["total_bits"] == 100 and s["max_total_bits"] == 109 and s["slots"] == 2048


def test_bfv_context_exact_integers_and_checks():
    assert bfv_chain(4096) == [36, 36, 36]
    assert sum(bfv_chain(8192, security=192)) <= 152
    he = bfv_context(plain_modulus_bits=20, poly_modulus_degree=4096)
    assert he.plain_modulus % (2 * 4096) == 1 and he.plain_modulus.bit_length() == 20
    assert he.slots == 4096 and he.total_bits <= 109
    client = Client(he)
    ct = client.encrypt([3, -4, 100])
    assert client.decrypt(ct * ct).tolist() == [9, 16, 10000]
    with pytest.raises(ValueError, match="plain_modulus_bits"):
        bfv_context(plain_modulus_bits=10, poly_modulus_degree=4096)
    with pytest.raises(ValueError, match="109"):
        bfv_context(plain_modulus_bits=20, poly_modulus_degree=4096, coeff_mod_bit_sizes=[60, 60])


def test_special_prime_smaller_than_a_data_prime_refused():
    """SEAL's key switching multiplies its noise by about 2^(largest prime - special prime): with [60, 40, 40, 38]
    a TenSEAL sum by rotations is off by about 3 on values of about 1, so the kit refuses such a chain."""
    with pytest.raises(ValueError, match="special prime"):
        ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 38], galois=False)
    ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], galois=False)  # equal: fine


def test_scale_drift_is_the_rescale_primes_distance_and_decides_precision():
    """The rescale primes are 1 mod 2N, so at 20 bits and N = 8192 they sit far below 2^20; TenSEAL pretends the
    scale is 2^20 after each rescale, and a product is off by that relative amount."""
    coarse = ckks_context(depth=2, scale_bits=20, galois=False)
    fine = ckks_context(depth=2, scale_bits=40, galois=False)
    for he in (coarse, fine):
        assert len(he.rescale_primes) == 2 and all(q % (2 * he.poly_modulus_degree) == 1 for q in he.rescale_primes)
    assert coarse.scale_drift > 0.1 > 1e-4 > fine.scale_drift
    assert coarse.summary()["scale_drift"] == coarse.scale_drift
    for he, tol in ((coarse, None), (fine, 1e-3)):
        client = Client(he)
        ct = client.encrypt([1.0, 2.0])
        sq = ct * ct
        x4 = client.decrypt(sq * sq)
        rel = float(((x4 - torch.tensor([1.0, 16.0], dtype=torch.float64)).abs() / torch.tensor([1.0, 16.0])).max())
        if tol is None:
            assert rel > 0.1  # the drift shows up as a gross error
        else:
            assert rel < tol


def test_standard_table_equals_seals_own_bounds():
    """Every entry of HE_STANDARD_MAX_LOGQ (HE Standard Table 1, ternary secret) equals SEAL's MaxBitCount."""
    from tenseal import sealapi
    levels = {128: sealapi.SEC_LEVEL_TYPE.TC128, 192: sealapi.SEC_LEVEL_TYPE.TC192, 256: sealapi.SEC_LEVEL_TYPE.TC256}
    for sec, row in HE_STANDARD_MAX_LOGQ.items():
        for n, bound in row.items():
            assert sealapi.CoeffModulus.MaxBitCount(n, levels[sec]) == bound, (sec, n)


def test_integer_headroom_is_kept_and_reported():
    assert ckks_chain(depth=1, scale_bits=50) == [60, 50, 60]
    with pytest.raises(ValueError, match="scale_bits"):  # 2 integer bits: a product decrypts to garbage
        ckks_chain(depth=1, scale_bits=58)
    with pytest.raises(ValueError, match="scale_bits"):
        ckks_context(depth=1, scale_bits=60, galois=False)
    with pytest.raises(ValueError, match="below the first prime"):
        ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 40, 40], scale_bits=40, galois=False)
    with pytest.warns(UserWarning, match="2 integer bits"):
        ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 58, 60], galois=False)
    he = ckks_context(depth=1, scale_bits=40, galois=False)
    assert he.integer_bits == 20 and he.summary()["integer_bits"] == 20
    client = Client(he)
    with pytest.raises(ValueError, match="integer_bits"):
        client.encrypt([1.0, 2.0 ** 19])
    ok = 2.0 ** 19 - 1
    assert abs(float(client.decrypt(client.encrypt([ok]) * 1.0)[0]) - ok) < 1e-3 * ok  # just below the bound


def test_public_context_without_galois_keys_is_small_and_the_key_id_identifies_the_pair():
    from mlsec_kit.crypto.he import Server
    he = ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 40])
    client = Client(he)
    full, slim = client.public_context(), client.public_context(galois=False)
    assert len(slim) * 5 < len(full)
    assert client.wire.to_server == len(full) + len(slim)
    assert not Server(slim).he.context.has_galois_keys() and Server(full).he.context.has_galois_keys()
    assert Server(slim).he.key_id == Server(full).he.key_id == he.key_id
    assert ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 40], galois=False).key_id \
        != he.key_id


def test_too_few_primes_named_before_seals_runtime_error():
    # SEAL has 20-bit primes = 1 mod 2N for depth 5 at N = 8192 but not for depth 6 (review e9)
    with pytest.raises(ValueError, match="too few primes"):
        ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40] + [20] * 6 + [40], galois=False)
