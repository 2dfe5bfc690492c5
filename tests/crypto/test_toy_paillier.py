"""Toy Paillier: key generation, the homomorphisms on many random values, and agreement with `phe`."""
import math
import warnings

import pytest
import sympy
import torch

from mlsec_kit.crypto.toy import (is_probable_prime, paillier_add, paillier_decrypt,
                                  paillier_encrypt, paillier_keygen, paillier_mul_scalar, paillier_rerandomize,
                                  random_bits, random_prime)


def keys(seed, bits=256):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return paillier_keygen(bits=bits, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def key():
    return keys(0)


def test_primality_agrees_with_sympy():
    g = torch.Generator().manual_seed(0)
    small = [n for n in range(-3, 3000) if is_probable_prime(n)]
    assert small == [n for n in range(-3, 3000) if n > 1 and sympy.isprime(n)]
    for carmichael in (561, 1105, 1729, 2465, 2821, 6601, 8911, 3215031751, 2152302898747):
        assert not is_probable_prime(carmichael, generator=g)
    for _ in range(20):
        n = random_bits(100, generator=g) | 1
        assert is_probable_prime(n, generator=g) == sympy.isprime(n)
    p = random_prime(64, generator=g)
    assert sympy.isprime(p) and p.bit_length() == 64


def test_random_bits_range_and_seed():
    a = [random_bits(13, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert a[0] == a[1] and 0 <= a[0] < 2 ** 13
    g = torch.Generator().manual_seed(1)
    draws = [random_bits(40, generator=g) for _ in range(200)]
    assert max(draws) < 2 ** 40 and max(draws) > 2 ** 39 and len(set(draws)) == 200


def test_keygen_structure_and_warning():
    with pytest.warns(UserWarning, match="INSECURE"):
        pub, priv = paillier_keygen(bits=128, generator=torch.Generator().manual_seed(3))
    assert pub.n == priv.p * priv.q and pub.bits == 128 and priv.p != priv.q
    assert sympy.isprime(priv.p) and sympy.isprime(priv.q)
    assert priv.lam == math.lcm(priv.p - 1, priv.q - 1)
    assert priv.mu * ((pow(pub.g, priv.lam, pub.n_square) - 1) // pub.n) % pub.n == 1
    assert keys(7, 128)[0] == keys(7, 128)[0] and keys(7, 128)[0] != keys(8, 128)[0]


def test_encryption_matches_the_formula_and_is_randomised(key):
    pub, priv = key
    g = torch.Generator().manual_seed(11)
    m, r = 123456789, 987654321
    assert paillier_encrypt(pub, m, r=r) == pow(pub.g, m, pub.n_square) * pow(r, pub.n, pub.n_square) % pub.n_square
    c1, c2 = paillier_encrypt(pub, m, generator=g), paillier_encrypt(pub, m, generator=g)
    assert c1 != c2 and paillier_decrypt(priv, c1) == paillier_decrypt(priv, c2) == m


def test_homomorphisms_on_many_random_values(key):
    pub, priv = key
    g = torch.Generator().manual_seed(12)
    for _ in range(150):
        m1 = random_bits(200, generator=g) - 2 ** 199
        m2 = random_bits(200, generator=g) - 2 ** 199
        k = random_bits(40, generator=g) - 2 ** 39
        c1, c2 = paillier_encrypt(pub, m1, generator=g), paillier_encrypt(pub, m2, generator=g)
        assert paillier_decrypt(priv, c1) == m1
        assert paillier_decrypt(priv, paillier_add(pub, c1, c2)) == m1 + m2
        assert paillier_decrypt(priv, paillier_mul_scalar(pub, c1, k)) == k * m1
        # sums are modulo n: unsigned decryption wraps
        assert paillier_decrypt(priv, paillier_add(pub, c1, c2), signed=False) == (m1 + m2) % pub.n


def test_bad_input_named(key):
    pub, priv = key
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="bits"):
        paillier_keygen(bits=255, generator=g)
    with pytest.raises(ValueError, match="bits"):
        paillier_keygen(bits=16, generator=g)
    with pytest.raises(TypeError, match="generator"):
        paillier_keygen(bits=128, generator=0)
    with pytest.raises(ValueError, match="m must be in"):
        paillier_encrypt(pub, pub.n, generator=g)
    with pytest.raises(TypeError, match="m"):
        paillier_encrypt(pub, 1.5, generator=g)
    with pytest.raises(ValueError, match="generator"):
        paillier_encrypt(pub, 1)
    with pytest.raises(ValueError, match="coprime"):
        paillier_encrypt(pub, 1, r=priv.p)
    with pytest.raises(ValueError, match=r"c must be in \(0, n\^2\)"):
        paillier_decrypt(priv, pub.n_square)
    with pytest.raises(TypeError, match="k"):
        paillier_mul_scalar(pub, 5, 1.0)


def test_agrees_with_phe(key):
    paillier = pytest.importorskip("phe.paillier")
    pub, priv = key
    phe_pub = paillier.PaillierPublicKey(pub.n)
    phe_priv = paillier.PaillierPrivateKey(phe_pub, priv.p, priv.q)
    g = torch.Generator().manual_seed(13)
    for _ in range(40):
        m1 = random_bits(60, generator=g) - 2 ** 59
        m2 = random_bits(60, generator=g) - 2 ** 59
        k = random_bits(20, generator=g) - 2 ** 19
        r = 1 + random_bits(200, generator=g)
        # same g = n + 1 and same r: identical ciphertexts
        assert paillier_encrypt(pub, m1 % pub.n, r=r) == phe_pub.raw_encrypt(m1 % pub.n, r_value=r)
        # phe decrypts our homomorphic results ...
        c = paillier_add(pub, paillier_encrypt(pub, m1, generator=g),
                         paillier_mul_scalar(pub, paillier_encrypt(pub, m2, generator=g), k))
        assert phe_priv.decrypt(paillier.EncryptedNumber(phe_pub, c, 0)) == m1 + k * m2
        # ... and we decrypt phe's
        e = phe_pub.encrypt(m1) + phe_pub.encrypt(m2) * k
        assert e.exponent == 0
        assert paillier_decrypt(priv, e.ciphertext(be_secure=False)) == m1 + k * m2


def test_rerandomize_hides_the_servers_weights_in_the_randomness():
    """A weighted sum prod c_i^{w_i} carries randomness prod r_i^{n w_i}, which the client (knowing its r_i) can
    match against candidate weights; after re-randomisation no candidate, the true weights included, matches."""
    public, private = keys(1, bits=128)
    n, n2 = public.n, public.n_square
    g = torch.Generator().manual_seed(2)
    x, w = [3, 1, 4], [7, -12, 5]
    rs = [1 + random_bits(100, generator=g) % (n - 1) for _ in x]
    rs = [r if math.gcd(r, n) == 1 else 1 for r in rs]
    cts = [paillier_encrypt(public, xi, r=ri) for xi, ri in zip(x, rs)]
    reply = 1
    for c, wi in zip(cts, w):
        reply = paillier_add(public, reply, paillier_mul_scalar(public, c, wi)) if reply != 1 else \
            paillier_mul_scalar(public, c, wi)
    assert paillier_decrypt(private, reply) == sum(a * b for a, b in zip(x, w))

    def explained_by(c, cand):  # the client's check: is c = Enc(<cand, x>; prod r_i^cand_i) ?
        r = 1
        for ri, wi in zip(rs, cand):
            r = r * pow(ri, wi % n, n) % n
        return c == paillier_encrypt(public, sum(a * b for a, b in zip(x, cand)), r=r)

    assert explained_by(reply, w)  # without re-randomisation the weights are confirmed from the ciphertext
    fresh = paillier_rerandomize(public, reply, generator=torch.Generator().manual_seed(3))
    assert fresh != reply and paillier_decrypt(private, fresh) == paillier_decrypt(private, reply)
    assert not explained_by(fresh, w)
    assert fresh != paillier_rerandomize(public, reply, generator=torch.Generator().manual_seed(4))
    assert paillier_rerandomize(public, reply, r=1) == reply
    with pytest.raises(ValueError, match="generator"):
        paillier_rerandomize(public, reply)
    with pytest.raises(ValueError, match="coprime"):
        paillier_rerandomize(public, reply, r=n)
