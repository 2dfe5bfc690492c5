"""Label-only membership inference (Choquette-Choo et al. 2021) against the chapter-4 Oracle."""
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from mlsec_kit.attacks.evasion.oracle import Oracle
from mlsec_kit.attacks.inference.label_only import label_only_membership
from mlsec_kit.data import load_dataset, make_loader
from mlsec_kit.models import mlp
from mlsec_kit.train import fit

N = 200  # members and non-members each
# Two groups of 200 whose membership labels carry no signal: the AUC's standard error is about
# sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.029, so chance means an AUC within 3 standard errors of 0.5.
CHANCE = 0.09


def _overfit_mlp(x, y, seed=0):
    torch.manual_seed(seed)
    model = mlp((1, 8, 8), 10, hidden=(128,))
    fit(model, make_loader(x, y, batch_size=32, shuffle=True, seed=seed), epochs=100, lr=3e-3)
    return model.eval()


@pytest.fixture(scope="module")
def setting():
    """An MLP that fits 200 training digits perfectly; the records: those 200 (members) and 200 test digits.
    A second model of the same kind trained on 200 other digits, to which all 400 records are unseen."""
    d = load_dataset("digits", seed=0)
    target = _overfit_mlp(d.X_train[:N], d.y_train[:N])
    independent = _overfit_mlp(d.X_train[N:2 * N], d.y_train[N:2 * N])
    x = torch.cat([d.X_train[:N], d.X_test[:N]])
    y = torch.cat([d.y_train[:N], d.y_test[:N]])
    member = torch.cat([torch.ones(N), torch.zeros(N)])
    assert (target(d.X_train[:N]).argmax(1) == d.y_train[:N]).all()  # overfit: every member is fitted
    return target, independent, x, y, member


def _auc(member, scores):
    return roc_auc_score(member.numpy(), scores.numpy())


def _scores(model, x, y, **kw):
    return label_only_membership(Oracle(model, output="label"), x, y, generator=torch.Generator().manual_seed(0), **kw)


def test_noise_robustness_beats_chance_and_the_gap_attack_on_an_overfit_model(setting):
    target, _, x, y, member = setting
    scores = _scores(target, x, y, sigma=0.2, num_queries=50)
    gap = (target(x).argmax(1) == y).float()  # the label-only baseline: "correct means member"
    auc, gap_auc = _auc(member, scores), _auc(member, gap)
    assert auc >= 0.58, auc  # measured 0.62 at this seed
    assert auc >= gap_auc + 0.05, (auc, gap_auc)  # measured 0.53 for the gap attack
    # the record's own answer is one of the num_queries + 1 counted: a record the model gets wrong cannot score 1,
    # and at least one such record exists among the non-members
    wrong = target(x).argmax(1) != y
    assert wrong.any() and (scores[wrong] <= 50 / 51 + 1e-6).all()
    # the noise is the attack's central step: without it (a vanishing sigma) the score is the gap attack's
    no_noise = _scores(target, x, y, sigma=1e-9, num_queries=5)
    assert torch.equal(no_noise, gap)
    assert len(scores.unique()) > 10  # robustness is graded, not just right or wrong


def test_boundary_distance_beats_chance_on_an_overfit_model(setting):
    target, _, x, y, member = setting
    oracle = Oracle(target, output="label")
    scores = label_only_membership(oracle, x, y, method="boundary", num_queries=300, steps=10,
                                   generator=torch.Generator().manual_seed(0))
    assert _auc(member, scores) >= 0.55  # measured 0.59 at this seed
    assert int(oracle.queries.max()) <= 301  # HopSkipJump's budget plus one query for the record itself
    wrong = target(x).argmax(1) != y
    assert (scores[wrong] == 0).all() and (scores[~wrong] > 0).all()


@pytest.mark.parametrize("method,kw", [("noise", dict(sigma=0.2, num_queries=50)),
                                       ("boundary", dict(num_queries=300, steps=10))])
def test_at_chance_when_the_records_are_independent_of_the_training_data(setting, method, kw):
    _, independent, x, y, member = setting
    scores = _scores(independent, x, y, method=method, **kw)
    assert abs(_auc(member, scores) - 0.5) <= CHANCE  # measured 0.48 (noise) and 0.51 (boundary)


def test_noise_queries_are_charged_and_seeded(setting):
    target, _, x, y, _ = setting
    oracle = Oracle(target, output="label")
    a = label_only_membership(oracle, x[:20], y[:20], sigma=0.3, num_queries=7,
                              generator=torch.Generator().manual_seed(1))
    assert oracle.queries.tolist() == [8] * 20  # the record plus 7 noisy copies each
    b = _scores(target, x[:20], y[:20], sigma=0.3, num_queries=7)
    c = label_only_membership(Oracle(target, output="label"), x[:20], y[:20], sigma=0.3, num_queries=7,
                              generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_only_labels_are_used_and_inputs_are_kept(setting):
    target, _, x, y, _ = setting
    x0, y0 = x.clone(), y.clone()
    by_label = _scores(target, x[:50], y[:50], sigma=0.3, num_queries=10)
    scores_oracle = Oracle(target, output="scores")
    by_scores = label_only_membership(scores_oracle, x[:50], y[:50], sigma=0.3, num_queries=10,
                                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(by_label, by_scores)
    assert torch.equal(x, x0) and torch.equal(y, y0)


class _Constant(nn.Module):
    """Always answers class 0: no point of the input range is misclassified for a record labelled 0."""

    def forward(self, x):
        logits = torch.zeros(len(x), 3)
        logits[:, 0] = 1.0
        return logits


def test_boundary_score_of_a_record_hopskipjump_cannot_move_is_the_input_diameter():
    x = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 0, 1, 2, 1])
    scores = label_only_membership(Oracle(_Constant(), output="label"), x, y, method="boundary", num_queries=20,
                                   steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(scores, torch.tensor([2.0, 2.0, 2.0, 0.0, 0.0, 0.0]))  # sqrt(4) * (1 - 0)


def test_bad_input(setting):
    target, _, x, y, _ = setting
    oracle = Oracle(target, output="label")
    with pytest.raises(TypeError, match="oracle"):
        label_only_membership(target, x, y)
    for kw, name in [(dict(method="hsj"), "method"), (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"),
                     (dict(num_queries=0), "num_queries"), (dict(steps=0, method="boundary"), "steps")]:
        with pytest.raises(ValueError, match=name):
            label_only_membership(oracle, x, y, **kw)
    with pytest.raises(ValueError, match="y must have shape"):
        label_only_membership(oracle, x, y[:-1])
    with pytest.raises(ValueError, match="x must lie in the input range"):
        label_only_membership(oracle, x + 2.0, y)
