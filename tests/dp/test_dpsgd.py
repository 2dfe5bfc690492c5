"""DP-SGD from scratch: per-example gradients, ghost norms, clipping, noise, Poisson sampling, the training loop,
and agreement with Opacus on the clipped sum before noise."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsec_kit.dp import (DPHistory, clip_and_sum, clip_factors, dp_sgd_step, per_sample_gradients,
                          per_sample_norms, poisson_batches, train_dp_sgd)
from mlsec_kit.dp import dpsgd
from mlsec_kit.dp.dpsgd_broken import dp_sgd_step_clip_after_averaging, dp_sgd_step_noise_divided_twice
from mlsec_kit.models import mlp, small_cnn

# Opacus's hooks warn that no input requires a gradient (the inputs are data); that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

METHODS = ("ghost", "gram", "vmap")


def _mlp(seed=0):
    torch.manual_seed(seed)
    return mlp((12,), 4, hidden=(16, 8))


class _CNN(nn.Module):
    """Convs with stride, dilation, padding and no bias, a GroupNorm (vmap fallback inside the ghost path),
    and a linear layer applied to a sequence (T > 1)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 3, padding=1)
        self.gn = nn.GroupNorm(2, 6)
        self.c2 = nn.Conv2d(6, 8, (3, 2), stride=2, dilation=(1, 2), bias=False)
        self.seq = nn.Linear(8, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = F.relu(self.gn(self.c1(x)))
        h = F.relu(self.c2(h))                       # (B, 8, H', W')
        h = self.seq(h.flatten(2).transpose(1, 2))   # (B, T, 5): a linear layer over T positions
        return self.head(h.mean(1))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return _CNN()


def _data(kind, b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 12, generator=g) if kind == "mlp" else torch.randn(b, 2, 9, 10, generator=g)
    y = torch.randint(0, 3, (b,), generator=g)
    return x, y


def _single_grads(model, x, y):
    out = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    return out


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_per_sample_gradients_equal_single_example_gradients(kind):
    model = _mlp() if kind == "mlp" else _cnn()
    x, y = _data(kind)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = per_sample_gradients(model, x, y)
    singles = _single_grads(model, x, y)
    assert set(g) == {n for n, _ in model.named_parameters()}
    for n, p in model.named_parameters():
        assert g[n].shape == (len(x),) + p.shape
        for i in range(len(x)):
            torch.testing.assert_close(g[n][i], singles[i][n], rtol=1e-4, atol=1e-6)
        assert torch.equal(p, before[n])
    # the examples differ, so a per-batch gradient broadcast to every row would fail the check above
    first = next(iter(g.values()))
    assert not torch.allclose(first[0], first[1])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("method", METHODS)
def test_norms_equal_the_materialised_ones(kind, method):
    model = _mlp() if kind == "mlp" else _cnn()
    x, y = _data(kind, b=7)
    truth = torch.stack([torch.cat([g.flatten() for g in s.values()]).norm() for s in _single_grads(model, x, y)])
    norms = per_sample_norms(model, x, y, method=method)
    torch.testing.assert_close(norms, truth, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_ghost_norms_of_linear_and_conv_layers_use_no_per_example_gradients(monkeypatch):
    """Without a fallback layer, the ghost paths never call vmap: the norms come from activations and output
    gradients only; and the Gram trick and the per-layer gradient agree on every layer type."""
    torch.manual_seed(0)
    model = small_cnn((1, 10, 10), 3, width=4)
    x, y = torch.randn(5, 1, 10, 10), torch.randint(0, 3, (5,))
    truth = per_sample_norms(model, x, y, method="vmap")

    def forbidden(*a, **k):
        raise AssertionError("vmap called")
    monkeypatch.setattr(dpsgd, "_vmap_grads", forbidden)
    for method in ("ghost", "gram"):
        torch.testing.assert_close(per_sample_norms(model, x, y, method=method), truth, rtol=1e-4, atol=1e-6)
    conv = model[0]
    a, b = torch.randn(4, 1, 10, 10), torch.randn(4, 4, 10, 10)
    torch.testing.assert_close(dpsgd._layer_sq_norms(conv, a, b, True), dpsgd._layer_sq_norms(conv, a, b, False),
                               rtol=1e-4, atol=1e-5)


def test_ghost_refuses_in_place_changes_and_repeated_layers():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2))
    x, y = torch.randn(3, 4), torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="in place"):
        per_sample_norms(model, x, y, method="ghost")
    per_sample_norms(model, x, y, method="vmap")  # vmap does not care
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.Tanh(), shared, nn.Linear(4, 2))
    with pytest.raises(ValueError, match="more than once"):
        per_sample_norms(twice, x, y, method="ghost")
    torch.testing.assert_close(per_sample_norms(twice, x, y, method="vmap"),
                               torch.stack([torch.cat([g.flatten() for g in s.values()]).norm()
                                            for s in _single_grads(twice, x, y)]), rtol=1e-4, atol=1e-6)
    # the model comes back with its Parameters (torch's functional_call alone returns plain tensors here)
    assert all(isinstance(p, nn.Parameter) for m in twice.modules() for p in m._parameters.values())


class _Tied(nn.Module):
    """Input and output layers sharing one weight (tied), and a linear layer whose forward is never called (its
    weight is used through F.linear)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 4, bias=False)
        self.mid = nn.Linear(4, 4)
        self.out = nn.Linear(4, 4, bias=False)
        self.out.weight = self.inp.weight
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        h = torch.tanh(F.linear(h, self.unused.weight, self.unused.bias))
        return self.out(torch.tanh(self.mid(h)))


def test_tied_and_uncalled_layers_fall_back_to_vmap():
    torch.manual_seed(0)
    model = _Tied()
    x, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    truth = torch.stack([torch.cat([g.flatten() for g in s.values()]).norm() for s in _single_grads(model, x, y)])
    for method in METHODS:
        torch.testing.assert_close(per_sample_norms(model, x, y, method=method), truth, rtol=1e-4, atol=1e-6)


def test_clipping_bounds_every_example_and_keeps_small_gradients():
    g = torch.Generator().manual_seed(3)
    grads = {"w": torch.randn(50, 3, 4, generator=g) * torch.rand(50, 1, 1, generator=g) * 4,
             "b": torch.randn(50, 3, generator=g)}
    norms = dpsgd._flat_norms(grads)
    c = 1.5
    f = clip_factors(norms, max_grad_norm=c)
    assert torch.all(f * norms <= c)
    small, big = norms < c * 0.999, norms > c
    assert small.any() and big.any()
    torch.testing.assert_close(f[small], torch.ones(int(small.sum())), atol=1e-5, rtol=0)
    torch.testing.assert_close((f * norms)[big], torch.full((int(big.sum()),), c), atol=1e-5, rtol=0)
    total = clip_and_sum(grads, max_grad_norm=c)
    manual = {n: sum(f[i] * v[i] for i in range(50)) for n, v in grads.items()}
    for n in grads:
        torch.testing.assert_close(total[n], manual[n], rtol=1e-5, atol=1e-5)
    # removing any one example moves the sum by at most C (the sensitivity the noise is calibrated to)
    for i in range(50):
        rest = clip_and_sum({n: torch.cat([v[:i], v[i + 1:]]) for n, v in grads.items()}, max_grad_norm=c)
        diff = torch.cat([(total[n] - rest[n]).flatten() for n in grads]).norm()
        assert diff <= c * (1 + 1e-5)
    assert diff > 0
    assert torch.equal(grads["b"], grads["b"].clone())


def _opacus_clipped_sum(model, x, y, c):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    gsm = GradSampleModule(copy.deepcopy(model), loss_reduction="sum")
    opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=0.1), noise_multiplier=0.0, max_grad_norm=c,
                      expected_batch_size=len(x), loss_reduction="sum")
    opt.zero_grad()
    F.cross_entropy(gsm(x), y, reduction="sum").backward()
    opt.clip_and_accumulate()
    return {n.removeprefix("_module."): p.summed_grad for n, p in gsm.named_parameters()}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_clipped_sum_before_noise_equals_opacus(kind):
    model = _mlp(2) if kind == "mlp" else _cnn(2)
    x, y = _data(kind, b=16, seed=5)
    c = 0.3
    ref = _opacus_clipped_sum(model, x, y, c)
    assert (per_sample_norms(model, x, y, method="vmap") > c).sum() >= 4  # clipping is active
    for method in METHODS:
        m = copy.deepcopy(model)
        dp_sgd_step(m, x, y, max_grad_norm=c, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=1,
                    method=method)
        for n, p in m.named_parameters():
            torch.testing.assert_close(p.grad, ref[n], rtol=1e-5, atol=1e-5)


def test_ghost_clipping_equals_opacus_ghost_clipping():
    """Opacus's own ghost clipping (Linear layers: norms from activations and output gradients, then a second
    backward of the reweighted loss) gives the same norms and the same clipped sum."""
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
    model = _mlp(5)
    x, y = _data("mlp", b=16, seed=6)
    c = 0.2
    gsm = GradSampleModuleFastGradientClipping(copy.deepcopy(model), max_grad_norm=c, use_ghost_clipping=True,
                                               loss_reduction="sum")
    opt = DPOptimizerFastGradientClipping(torch.optim.SGD(gsm.parameters(), lr=0.1), noise_multiplier=0.0,
                                          max_grad_norm=c, expected_batch_size=len(x), loss_reduction="sum")
    crit = DPLossFastGradientClipping(gsm, opt, nn.CrossEntropyLoss(reduction="sum"), loss_reduction="sum")
    crit(gsm(x), y).backward()
    torch.testing.assert_close(per_sample_norms(model, x, y, method="gram"), gsm.per_sample_gradient_norms,
                               rtol=1e-5, atol=1e-6)
    dp_sgd_step(model, x, y, max_grad_norm=c, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=1,
                method="gram")
    ref = {n.removeprefix("_module."): p.grad for n, p in gsm.named_parameters()}
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-5, atol=1e-6)


def test_step_adds_noise_of_std_sigma_c_over_expected_batch_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 80), nn.Tanh(), nn.Linear(80, 5))
    x, y = torch.randn(20, 100), torch.randint(0, 5, (20,))
    c, sigma, bbar = 0.7, 1.3, 25.0
    dp_sgd_step(model, x, y, max_grad_norm=c, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=bbar)
    clean = torch.cat([p.grad.flatten() for p in model.parameters()])
    dp_sgd_step(model, x, y, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=bbar,
                generator=torch.Generator().manual_seed(9))
    noisy = torch.cat([p.grad.flatten() for p in model.parameters()])
    noise = noisy - clean
    assert noise.numel() > 8000
    assert abs(noise.std().item() / (sigma * c / bbar) - 1) < 0.03
    assert abs(noise.mean().item()) < 4 * sigma * c / bbar / math.sqrt(noise.numel())
    # the same seed gives the same gradient; the noise is the generator's standard normals times σC/B̄
    again = copy.deepcopy(model)
    dp_sgd_step(again, x, y, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=bbar,
                generator=torch.Generator().manual_seed(9))
    assert torch.equal(torch.cat([p.grad.flatten() for p in again.parameters()]), noisy)
    g = torch.Generator().manual_seed(9)
    z = torch.cat([torch.normal(0.0, sigma * c, size=tuple(p.shape), generator=g).flatten()
                   for p in model.parameters()])
    torch.testing.assert_close(noise, z / bbar, rtol=1e-4, atol=1e-6)


def test_empty_batch_gives_the_noise_alone():
    model = _mlp()
    x, y = torch.zeros(0, 12), torch.zeros(0, dtype=torch.long)
    for method in METHODS:
        info = dp_sgd_step(model, x, y, max_grad_norm=1.0, noise_multiplier=2.0, expected_batch_size=4.0,
                           generator=torch.Generator().manual_seed(1), method=method)
        assert info.losses.numel() == 0
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            torch.testing.assert_close(p.grad, torch.normal(0.0, 2.0, size=tuple(p.shape), generator=g) / 4.0)


def test_poisson_batches_have_the_right_size_distribution():
    n, q, steps = 500, 0.04, 600
    batches = list(poisson_batches(n, sample_rate=q, steps=steps, generator=torch.Generator().manual_seed(0)))
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float64)
    assert len(batches) == steps
    assert abs(sizes.mean().item() - n * q) < 4 * math.sqrt(n * q * (1 - q) / steps)
    assert abs(sizes.var().item() / (n * q * (1 - q)) - 1) < 0.2   # binomial, not fixed-size
    for b in batches[:50]:
        assert b.dtype == torch.long and len(torch.unique(b)) == len(b) and (b.min() >= 0 if len(b) else True)
        assert len(b) == 0 or b.max() < n
    counts = torch.bincount(torch.cat(batches), minlength=n).double()
    assert abs(counts.mean().item() - q * steps) < 0.5   # every record is sampled at rate q
    again = list(poisson_batches(n, sample_rate=q, steps=steps, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    tiny = [len(b) for b in poisson_batches(20, sample_rate=0.01, steps=50, generator=torch.Generator().manual_seed(1))]
    assert 0 in tiny   # empty batches happen and are returned


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 12, generator=g) + 1.5 * (2 * y[:, None] - 1) * torch.ones(12) / math.sqrt(12) * 2
    return x, y


def test_training_learns_and_records_epsilon():
    x, y = _blobs(400, 0)
    xt, yt = _blobs(400, 1)
    model = _mlp(3)
    h = train_dp_sgd(model, x, y, sample_rate=0.1, max_grad_norm=1.0, noise_multiplier=1.0, lr=0.1, delta=1e-3,
                     epochs=3, generator=torch.Generator().manual_seed(0), eval_data=(xt, yt))
    assert isinstance(h, DPHistory) and h.epochs == 3 and h.steps == [10, 20, 30]
    assert h.test_acc[-1] > 0.8
    assert h.epsilon[0] < h.epsilon[1] < h.epsilon[2] < 10
    assert h.epsilon[-1] == pytest.approx(dpsgd._epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=30,
                                                         delta=1e-3))
    # seeded: the same run again gives the same weights; a different seed does not
    m2 = _mlp(3)
    h2 = train_dp_sgd(m2, x, y, sample_rate=0.1, max_grad_norm=1.0, noise_multiplier=1.0, lr=0.1, delta=1e-3,
                      epochs=3, generator=torch.Generator().manual_seed(0), eval_data=(xt, yt))
    assert h2 == h and all(torch.equal(a, b) for a, b in zip(model.parameters(), m2.parameters()))
    m3 = _mlp(3)
    train_dp_sgd(m3, x, y, sample_rate=0.1, max_grad_norm=1.0, noise_multiplier=1.0, lr=0.1, delta=1e-3,
                 steps=5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(next(m3.parameters()), next(model.parameters()))
    h0 = train_dp_sgd(_mlp(3), x, y, sample_rate=0.1, max_grad_norm=1.0, noise_multiplier=0.0, allow_no_noise=True,
                      lr=0.1, delta=1e-3, steps=4)
    assert h0.epsilon == [math.inf] and h0.steps == [4]


def test_fallback_accountant_matches_opacus_at_the_same_orders():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    orders = list(range(2, 257))
    for sigma, q, steps, delta in [(1.1, 256 / 60000, 14000, 1e-5), (0.8, 0.01, 1000, 1e-6), (2.0, 0.1, 50, 1e-3)]:
        ours = dpsgd._rdp_epsilon_fallback(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
        rdp = compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
        ref = get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0]
        assert ours == pytest.approx(ref, rel=1e-6)


def test_broken_steps_leak_more_than_the_correct_one():
    """A canary with a huge gradient: the correct step moves the gradient by at most C/B̄ when the canary is
    added (same noise); clipping after averaging lets it move by about C; dividing the noise twice shrinks it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = torch.randn(32, 10) * 0.1, torch.randint(0, 3, (32,))
    xc, yc = torch.cat([x, 50 * torch.ones(1, 10)]), torch.cat([y, torch.tensor([2])])
    c, sigma, bbar = 0.5, 1.0, 32.0

    def grad_of(step, xx, yy, **kw):
        m = copy.deepcopy(model)
        step(m, xx, yy, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=bbar,
             generator=torch.Generator().manual_seed(4), **kw)
        return torch.cat([p.grad.flatten() for p in m.parameters()])

    moved = {step: (grad_of(step, xc, yc) - grad_of(step, x, y)).norm().item()
             for step in (dp_sgd_step, dp_sgd_step_clip_after_averaging, dp_sgd_step_noise_divided_twice)}
    assert moved[dp_sgd_step] <= c / bbar * (1 + 1e-4)
    assert moved[dp_sgd_step_noise_divided_twice] <= c / bbar * (1 + 1e-4)
    assert moved[dp_sgd_step_clip_after_averaging] > 5 * c / bbar
    empty = (torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))
    noise_ok = grad_of(dp_sgd_step, *empty).std().item()
    noise_twice = grad_of(dp_sgd_step_noise_divided_twice, *empty).std().item()
    assert noise_twice == pytest.approx(noise_ok / bbar, rel=1e-5)
    assert "BROKEN" in dp_sgd_step_clip_after_averaging.__doc__ and "BROKEN" in dp_sgd_step_noise_divided_twice.__doc__


def test_a_canary_audit_flags_the_broken_steps_and_not_the_correct_one():
    """One full-batch step (q = 1, so the claim is the Gaussian mechanism's: RDP α/(2σ²), Balle et al. conversion)
    on D (31 examples with tiny gradients) and D' = D + a canary with gradient norm 10; the output is the gradient's
    coordinate along the canary; 2,000 runs each, audited with a held-out event and Clopper-Pearson."""
    import numpy as np

    from mlsec_kit.dp import audit_epsilon, gaussian_rdp, rdp_to_dp
    sigma, c, b, n = 3.0, 1.0, 31, 2000
    torch.manual_seed(0)
    model = nn.Linear(2, 1, bias=False)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(b, 2, generator=g) * 0.01, torch.ones(b)
    xc, tc = torch.cat([x, torch.tensor([[10.0, 0.0]])]), torch.ones(b + 1)
    loss = lambda out, target: -out[:, 0] * target   # example i's gradient is -x_i
    orders = np.arange(2, 200)
    claim = rdp_to_dp(orders=orders, rdp=gaussian_rdp(sigma=sigma, orders=orders), delta=1e-5)[0]

    def outputs(step, xx, tt, seed):
        gen = torch.Generator().manual_seed(seed)
        out = torch.empty(n)
        for i in range(n):
            step(model, xx, tt, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=b + 0.5, generator=gen,
                 loss_fn=loss)
            out[i] = model.weight.grad[0, 0]
        return out

    found = {step: audit_epsilon(outputs(step, x, t, 1), outputs(step, xc, tc, 2), delta=1e-5)
             for step in (dp_sgd_step, dp_sgd_step_clip_after_averaging, dp_sgd_step_noise_divided_twice)}
    assert 0.5 < claim < 2
    assert not found[dp_sgd_step].refutes(claim)
    assert found[dp_sgd_step_clip_after_averaging].refutes(2 * claim)
    assert found[dp_sgd_step_noise_divided_twice].refutes(2 * claim)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_matches_cpu_with_a_cpu_generator():
    model = _cnn(4)
    x, y = _data("cnn", b=8)
    cpu = copy.deepcopy(model)
    dp_sgd_step(cpu, x, y, max_grad_norm=0.5, noise_multiplier=1.0, expected_batch_size=8,
                generator=torch.Generator().manual_seed(0))
    for method in METHODS:
        gpu = copy.deepcopy(model).cuda()
        dp_sgd_step(gpu, x.cuda(), y.cuda(), max_grad_norm=0.5, noise_multiplier=1.0, expected_batch_size=8,
                    generator=torch.Generator().manual_seed(0), method=method)
        for a, b in zip(cpu.parameters(), gpu.parameters()):
            torch.testing.assert_close(b.grad.cpu(), a.grad, rtol=1e-4, atol=1e-5)


def test_frozen_layers_and_float64_models():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 7 * 8, 4), nn.Tanh(),
                          nn.Linear(4, 3)).double()
    model[0].weight.requires_grad_(False)       # a conv with only its bias trainable
    model[5].requires_grad_(False)              # a frozen head
    x, y = _data("cnn", b=5)
    x = x.double()
    g = per_sample_gradients(model, x, y)
    assert set(g) == {"0.bias", "3.weight", "3.bias"} and g["3.weight"].dtype == torch.float64
    truth = dpsgd._flat_norms(g)
    for method in METHODS:
        torch.testing.assert_close(per_sample_norms(model, x, y, method=method), truth, rtol=1e-9, atol=1e-12)
        m = copy.deepcopy(model)
        dp_sgd_step(m, x, y, max_grad_norm=0.1, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=1,
                    method=method)
        ref = clip_and_sum(g, max_grad_norm=0.1)
        for n, p in m.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(p.grad, ref[n], rtol=1e-9, atol=1e-12)
            else:
                assert p.grad is None


def test_training_uses_the_accountant_module_when_it_is_there(monkeypatch):
    import sys
    import types
    calls = []
    fake = types.ModuleType("mlsec_kit.dp.accounting")

    def rdp_epsilon(**kw):
        calls.append(kw)
        return 0.123 * kw["steps"]
    fake.rdp_epsilon = rdp_epsilon
    monkeypatch.setitem(sys.modules, "mlsec_kit.dp.accounting", fake)
    x, y = _blobs(50, 0)
    h = train_dp_sgd(_mlp(), x, y, sample_rate=0.2, max_grad_norm=1.0, noise_multiplier=1.1, lr=0.1, delta=1e-4,
                     epochs=2, generator=torch.Generator().manual_seed(0))
    assert h.epsilon == pytest.approx([0.123 * 5, 0.123 * 10])
    assert calls[-1] == dict(noise_multiplier=1.1, sample_rate=0.2, steps=10, delta=1e-4)


def test_bad_input_is_refused_with_the_argument_named():
    model, (x, y) = _mlp(), _data("mlp")
    step = dict(max_grad_norm=1.0, noise_multiplier=1.0, expected_batch_size=4.0)
    for key, value, match in [("noise_multiplier", -1.0, "noise_multiplier"),
                              ("noise_multiplier", 0.0, "allow_no_noise"),
                              ("max_grad_norm", 0.0, "max_grad_norm"), ("max_grad_norm", -2.0, "max_grad_norm"),
                              ("expected_batch_size", 0, "expected_batch_size"), ("method", "fast", "method")]:
        with pytest.raises(ValueError, match=match):
            dp_sgd_step(model, x, y, **{**step, key: value})
    bn = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    for call in (lambda: dp_sgd_step(bn, x, y, **step), lambda: per_sample_gradients(bn, x, y),
                 lambda: per_sample_norms(bn, x, y)):
        with pytest.raises(ValueError, match="GroupNorm"):
            call()
    train = dict(sample_rate=0.1, max_grad_norm=1.0, noise_multiplier=1.0, lr=0.1, delta=1e-5, steps=2)
    for key, value, match in [("sample_rate", 0.0, "sample_rate"), ("sample_rate", 1.5, "sample_rate"),
                              ("delta", 1.0, "delta"), ("delta", 0.0, "delta"), ("noise_multiplier", -0.1,
                                                                                   "noise_multiplier"),
                              ("max_grad_norm", 0.0, "max_grad_norm"), ("lr", 0.0, "lr")]:
        with pytest.raises(ValueError, match=match):
            train_dp_sgd(model, x, y, **{**train, key: value})
    with pytest.raises(ValueError, match="exactly one"):
        train_dp_sgd(model, x, y, **{**train, "epochs": 1})
    with pytest.raises(ValueError, match="sample_rate"):
        poisson_batches(10, sample_rate=0.0, steps=3)
    with pytest.raises(ValueError, match="same number of rows"):
        per_sample_gradients(model, x, y[:-1])
    with pytest.raises(ValueError, match="max_grad_norm"):
        clip_factors(torch.ones(3), max_grad_norm=0.0)
    with pytest.raises(ValueError, match="one loss per example"):
        per_sample_norms(model, x, y, loss_fn=lambda o, t: F.cross_entropy(o, t))
    with pytest.raises(TypeError, match="model"):
        per_sample_gradients("net", x, y)


def test_clip_and_sum_of_an_empty_batch_is_zero():
    """Poisson sampling draws empty batches: their clipped sum is zero (it used to fail on reshape(0, -1))."""
    grads = {"w": torch.zeros(0, 3, 4), "b": torch.zeros(0, 4), "s": torch.zeros(0)}
    total = clip_and_sum(grads, max_grad_norm=1.0)
    assert {k: tuple(v.shape) for k, v in total.items()} == {"w": (3, 4), "b": (4,), "s": ()}
    assert all(float(v.abs().sum()) == 0 for v in total.values())
