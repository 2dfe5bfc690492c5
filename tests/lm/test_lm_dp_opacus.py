"""DP-SGD on the language model against Opacus (the reference library): the clipped sum of per-LINE gradients
(one training line = one example = the unit of privacy) before noise, on the kit's own tiny transformer.

Opacus's hooks compute per-example gradients layer by layer and need a batch dimension on every layer's input.
The kit's :class:`~mlsec_kit.lm.TinyTransformer` looks its position embeddings up with ``arange(T)``, one row of
positions shared by the whole batch, so ``GradSampleModule`` cannot wrap it as it is (``RuntimeError: stack
expects each tensor to be equal size``: the position embedding's "batch" is T). The test therefore hands Opacus
:class:`_BatchedPositions`, the same module with the position ids expanded to ``(B, T)``: the same function of the
same parameters (asserted: identical logits), so Opacus's per-example gradients are those of the kit's model.
Every other layer (token embedding, the attention's query/key/value/output ``nn.Linear`` maps, the MLP, the layer
norms, the head) is one Opacus supports natively.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from mlsec_kit import lm
from mlsec_kit.dp import dp_sgd_step

opacus = pytest.importorskip("opacus")

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing", "ignore:Secure RNG turned off",
                                        "ignore:Optimal order is the")


class _BatchedPositions(lm.TinyTransformer):
    """:class:`~mlsec_kit.lm.TinyTransformer` with position ids ``(B, T)`` instead of ``(T,)`` (for Opacus)."""

    def forward(self, x):
        B, T = x.shape
        h = self.tok(x) + self.pos(torch.arange(T, device=x.device).expand(B, T))
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h))


def _as_batched(model):
    twin = _BatchedPositions(d_model=model.tok.embedding_dim, layers=len(model.blocks),
                             heads=model.blocks[0].heads, context=model.context)
    twin.load_state_dict(model.state_dict())
    return twin


def _line_loss(logits, targets):
    """Mean cross-entropy per line over its non-PAD targets, written independently of lm.sequence_loss."""
    out = []
    for lg, t in zip(logits, targets):
        keep = t != lm.PAD
        out.append(F.cross_entropy(lg[keep], t[keep]))
    return torch.stack(out)


def _opacus_clipped_sum(model, x, y, c):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    gsm = GradSampleModule(_as_batched(model), loss_reduction="sum")
    gsm.train()   # Opacus records activations only in training mode; the model has no dropout, so same function
    opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=c,
                      expected_batch_size=len(x), loss_reduction="sum")
    opt.zero_grad()
    _line_loss(gsm(x), y).sum().backward()
    opt.clip_and_accumulate()
    norms = torch.stack([p.grad_sample.reshape(len(x), -1).norm(dim=1) for p in gsm.parameters()]).norm(dim=0)
    return {n.removeprefix("_module."): p.summed_grad.detach() for n, p in gsm.named_parameters()}, norms


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(3)
    model = lm.tiny_lm(d_model=16, layers=2, heads=2, context=48, generator=g)
    lm.train_lm(model, lm.make_records(40, generator=g), epochs=1, generator=g)   # not at initialisation
    canaries = lm.random_canaries(2, template="my pin is {secret}", digits=4, repeats=1, generator=g)
    texts = lm.make_corpus(10, canaries=canaries, generator=g).texts   # lines of different lengths: PAD matters
    x, y = lm.lm_rows(texts, context=48)
    return model, texts, x, y


def test_the_opacus_twin_is_the_same_function(setup):
    model, _, x, _ = setup
    torch.testing.assert_close(_as_batched(model)(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("method", ["vmap", "ghost"])
def test_per_line_clipped_sum_equals_opacus(setup, method):
    model, _, x, y = setup
    c = 1.0
    ref, norms = _opacus_clipped_sum(model, x, y, c)
    assert (norms > c).sum() >= 3 and (norms < c).sum() >= 1   # clipping active on some lines, not on all
    m = copy.deepcopy(model)
    info = dp_sgd_step(m, x, y, max_grad_norm=c, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=1,
                       method=method, loss_fn=lm.sequence_loss)
    torch.testing.assert_close(info.norms, norms, rtol=1e-4, atol=1e-6)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6)


def test_train_lm_dp_takes_the_opacus_step(setup):
    """One whole step of train_lm_dp (q = 1: every line in the batch; SGD, whose first step is -lr·gradient;
    σ tiny) moves the weights by the Opacus clipped sum divided by the expected batch size n."""
    model, texts, x, y = setup
    c, lr = 1.0, 1.0
    ref, _ = _opacus_clipped_sum(model, x, y, c)
    m = copy.deepcopy(model)
    hist = lm.train_lm_dp(m, texts, epochs=1, sample_rate=1.0, max_grad_norm=c, noise_multiplier=1e-9, lr=lr,
                          optimizer="sgd", generator=torch.Generator().manual_seed(0))
    assert hist.steps[-1] == 1
    before = dict(model.named_parameters())
    for n, p in m.named_parameters():
        torch.testing.assert_close((before[n] - p).detach() / lr, ref[n] / len(texts), rtol=1e-3, atol=1e-6)


def test_per_token_clipping_would_not_agree(setup):
    """The comparison can fail: clipping per token (each position its own example) is a different, wrong unit of
    privacy for lines, and gives a different gradient."""
    model, _, x, y = setup
    c = 1.0
    ref, _ = _opacus_clipped_sum(model, x, y, c)
    m = copy.deepcopy(model)
    xt = x.repeat_interleave(x.shape[1], 0)
    yt = torch.full_like(xt, lm.PAD)
    pos = torch.arange(x.shape[1]).repeat(len(x))
    yt[torch.arange(len(yt)), pos] = y.reshape(-1)
    keep = yt.ne(lm.PAD).any(1)
    dp_sgd_step(m, xt[keep], yt[keep], max_grad_norm=c, noise_multiplier=0.0, allow_no_noise=True,
                expected_batch_size=1, method="vmap", loss_fn=lm.sequence_loss)
    diff = max(float((p.grad - ref[n]).abs().max()) for n, p in m.named_parameters())
    assert diff > 1e-2


def test_train_lm_dp_reports_the_epsilon_of_opacus_accountant_for_its_q_and_steps(setup):
    """The ε train_lm_dp reports is Opacus's RDP accountant's for the run's own sample rate (per line), its step
    count epochs·round(1/q) and δ = 1/(10 n) with n the number of lines (canary copies included)."""
    from opacus.accountants import RDPAccountant
    model, texts, _, _ = setup
    m = copy.deepcopy(model)
    q, sigma, epochs = 0.25, 1.3, 2
    hist = lm.train_lm_dp(m, texts, epochs=epochs, sample_rate=q, noise_multiplier=sigma,
                          generator=torch.Generator().manual_seed(1))
    assert hist.steps == [4, 8] and hist.sample_rate == q and hist.delta == 1 / (10 * len(texts))
    for steps, eps in zip(hist.steps, hist.epsilon):
        acc = RDPAccountant()
        acc.history = [(sigma, q, steps)]
        assert eps == pytest.approx(acc.get_epsilon(delta=hist.delta), rel=1e-6)
