"""Attribute inference (Fredrikson et al. 2014; Yeom et al. 2018), always measured beside the baseline that
imputes the attribute from the other attributes without the target model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from mlsec_kit.attacks.evasion.oracle import Oracle
from mlsec_kit.attacks.inference.attribute import attribute_baseline, attribute_inference, without_attribute
from mlsec_kit.data import load_dataset, make_loader
from mlsec_kit.models import mlp
from mlsec_kit.train import fit

# Balanced accuracy on 100-331 records: 0.5 +- 0.1 is within about 3 standard errors of chance.
CHANCE = 0.1


def balanced_accuracy(scores, truth):
    guess = scores.argmax(1)
    return float(sum((guess[truth == v] == v).float().mean() for v in (0, 1)) / 2)


def _overfit(x, y, *, hidden, epochs, batch_size=32, seed=0):
    torch.manual_seed(seed)
    model = mlp((x.shape[1],), 2, hidden=hidden)
    fit(model, make_loader(x, y, batch_size=batch_size, shuffle=True, seed=seed), epochs=epochs, lr=3e-3)
    return model.eval()


@pytest.fixture(scope="module")
def diabetes():
    """The diabetes data (seed 0) and an MLP that fits its 331 training patients perfectly."""
    d = load_dataset("diabetes", seed=0)
    model = _overfit(d.X_train, d.y_train, hidden=(256, 256), epochs=150, batch_size=128)
    assert (model(d.X_train).argmax(1) == d.y_train).all()
    return d, model


def test_diabetes_attack_versus_the_imputation_baseline(diabetes):
    """The measured facts on diabetes (seed 0), members = the model's training patients:

    - the attack alone does NOT beat imputing sex from the other nine attributes (0.62 vs 0.72 balanced
      accuracy; over splits 0-3 the two are within 0.1 of each other, neither reliably ahead);
    - it leaks through memorisation: on the training patients it beats chance, on unseen patients it does not;
    - the attack with the imputation as its prior beats the imputation alone on the training patients (0.80).
    The imputation is trained on the 111 test patients (the attacker's own data) and guesses the members'.
    """
    d, model = diabetes
    sex = d.meta["sex"]
    column, values = sex["column"], sex["values"]
    attack_members = attribute_inference(model, d.X_train, d.y_train, attribute=column, values=values)
    attack_unseen = attribute_inference(model, d.X_test, d.y_test, attribute=column, values=values)
    baseline = attribute_baseline(without_attribute(d.X_test, column), sex["test"],
                                  without_attribute(d.X_train, column))
    combined = attribute_inference(model, d.X_train, d.y_train, attribute=column, values=values,
                                   prior=baseline.exp())
    bacc = {name: balanced_accuracy(s, truth) for name, s, truth in [
        ("members", attack_members, sex["train"]), ("unseen", attack_unseen, sex["test"]),
        ("baseline", baseline, sex["train"]), ("combined", combined, sex["train"])]}
    assert bacc["members"] >= 0.58, bacc  # beats chance on the records the model memorised
    assert abs(bacc["unseen"] - 0.5) <= CHANCE, bacc
    assert bacc["members"] <= bacc["baseline"], bacc  # ... but not the imputation
    assert bacc["baseline"] >= 0.62, bacc  # sex is predictable from the other attributes
    assert bacc["combined"] >= bacc["baseline"] + 0.05, bacc


@pytest.fixture(scope="module")
def synthetic():
    """400 records: a binary attribute (column 0, coded -1/+1) independent of five Gaussian columns."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    attr = torch.randint(0, 2, (400,), generator=g)
    x[:, 0] = attr.float() * 2 - 1
    y_random = torch.randint(0, 2, (400,), generator=g)
    y_predictive = (torch.rand(400, generator=g) < torch.sigmoid(2.0 * x[:, 0] + x[:, 1])).long()
    return x, attr, y_random, y_predictive


def _measure(x, attr, y, model):
    """Balanced accuracies: the attack on members (rows 0-199) and on unseen rows (200-399); the baselines,
    trained on the unseen rows and guessing the members, from the other attributes and from them plus y."""
    values = torch.tensor([-1.0, 1.0])
    mem, out = slice(0, 200), slice(200, 400)
    others = without_attribute(x, 0)
    with_y = torch.cat([others, y[:, None].float()], dim=1)
    return {
        "members": balanced_accuracy(attribute_inference(model, x[mem], y[mem], attribute=0, values=values),
                                     attr[mem]),
        "unseen": balanced_accuracy(attribute_inference(model, x[out], y[out], attribute=0, values=values),
                                    attr[out]),
        "others": balanced_accuracy(attribute_baseline(others[out], attr[out], others[mem]), attr[mem]),
        "others+y": balanced_accuracy(attribute_baseline(with_y[out], attr[out], with_y[mem]), attr[mem]),
    }


def test_attack_wins_where_only_the_model_knows_the_attribute(synthetic):
    """Random labels, memorised by an overfit model: the attribute is in nothing but the model's memory, so
    on members the attack wins and every baseline is at chance; on unseen records the attack is at chance."""
    x, attr, y, _ = synthetic
    model = _overfit(x[:200], y[:200], hidden=(128, 128), epochs=200)
    bacc = _measure(x, attr, y, model)
    assert bacc["members"] >= 0.7, bacc  # measured 0.79
    for name in ("unseen", "others", "others+y"):
        assert abs(bacc[name] - 0.5) <= CHANCE, (name, bacc)


def test_attack_beats_the_other_attributes_where_the_attribute_predicts_the_label(synthetic):
    """The label depends on the attribute: the attack wins against the other attributes alone (at chance,
    they are independent of it), on members and unseen records alike; but a baseline that also knows the
    label does as well — there the attack is just imputation from the label (Jayaraman & Evans 2022)."""
    x, attr, _, y = synthetic
    model = _overfit(x[:200], y[:200], hidden=(128, 128), epochs=200)
    bacc = _measure(x, attr, y, model)
    assert bacc["members"] >= 0.75 and bacc["unseen"] >= 0.75, bacc  # measured 0.85 and 0.84
    assert abs(bacc["others"] - 0.5) <= CHANCE, bacc
    assert bacc["members"] >= bacc["others"] + 0.2, bacc
    assert abs(bacc["others+y"] - bacc["members"]) <= 0.05, bacc


class _Linear(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        return x @ self.weight


def test_scores_are_the_log_probability_of_the_label_under_each_value():
    g = torch.Generator().manual_seed(3)
    x, weight = torch.randn(8, 4, generator=g), torch.randn(4, 3, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    model, values = _Linear(weight), torch.tensor([-1.0, 0.5, 2.0])
    x0 = x.clone()
    scores = attribute_inference(model, x, y, attribute=2, values=values)
    assert torch.equal(x, x0)  # the input is not modified
    for j, v in enumerate(values):
        xv = x.clone()
        xv[:, 2] = v
        assert torch.allclose(scores[:, j], -F.cross_entropy(xv @ weight, y, reduction="none"), atol=1e-6)
    # the hidden column's own content is never used: the candidates replace it
    scrambled = x.clone()
    scrambled[:, 2] = 100.0
    assert torch.allclose(attribute_inference(model, scrambled, y, attribute=2, values=values), scores)


def test_a_one_hot_attribute_is_written_into_all_its_columns():
    """Adult's sex is one-hot (``sex=Female``, ``sex=Male``): the candidates are the rows of the identity."""
    g = torch.Generator().manual_seed(7)
    x, weight = torch.randn(8, 5, generator=g), torch.randn(5, 2, generator=g)
    y = torch.randint(0, 2, (8,), generator=g)
    scores = attribute_inference(_Linear(weight), x, y, attribute=[3, 1], values=torch.eye(2))
    for j in range(2):
        xv = x.clone()
        xv[:, [3, 1]] = torch.eye(2)[j]
        assert torch.allclose(scores[:, j], -F.cross_entropy(xv @ weight, y, reduction="none"), atol=1e-6)
    assert torch.equal(without_attribute(x, [3, 1]), x[:, [0, 2, 4]])
    with pytest.raises(ValueError, match="values must be \\(V, 2\\)"):
        attribute_inference(_Linear(weight), x, y, attribute=[3, 1], values=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="attribute"):
        attribute_inference(_Linear(weight), x, y, attribute=[1, 1], values=torch.eye(2))


def test_prior_is_added_in_log_space_and_decides_when_the_model_ignores_the_attribute():
    g = torch.Generator().manual_seed(4)
    x, weight = torch.randn(10, 3, generator=g), torch.randn(3, 2, generator=g)
    weight[1] = 0.0  # the model ignores column 1: the label says nothing about it
    y = torch.randint(0, 2, (10,), generator=g)
    values, prior = torch.tensor([0.0, 1.0]), torch.tensor([0.3, 0.7])
    plain = attribute_inference(_Linear(weight), x, y, attribute=1, values=values)
    assert torch.allclose(plain[:, 0], plain[:, 1])
    with_prior = attribute_inference(_Linear(weight), x, y, attribute=1, values=values, prior=prior)
    assert torch.allclose(with_prior, plain + prior.log())
    assert (with_prior.argmax(1) == 1).all()
    per_row = torch.tensor([[0.9, 0.1]] * 5 + [[0.2, 0.8]] * 5)
    guess = attribute_inference(_Linear(weight), x, y, attribute=1, values=values, prior=per_row).argmax(1)
    assert guess.tolist() == [0] * 5 + [1] * 5


def test_an_oracle_with_scores_gives_the_same_scores_and_is_charged_per_value():
    g = torch.Generator().manual_seed(5)
    x, weight = torch.randn(6, 4, generator=g), torch.randn(4, 3, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    values = torch.tensor([-1.0, 0.0, 1.0])
    oracle = Oracle(_Linear(weight), output="scores", clip_min=-10.0, clip_max=10.0)
    direct = attribute_inference(_Linear(weight), x, y, attribute=0, values=values)
    assert torch.allclose(attribute_inference(oracle, x, y, attribute=0, values=values), direct, atol=1e-5)
    assert oracle.queries.tolist() == [3] * 6
    with pytest.raises(ValueError, match="model.*labels"):
        attribute_inference(Oracle(_Linear(weight), output="label", clip_min=-10.0, clip_max=10.0), x, y,
                            attribute=0, values=values)


def _confusion(k, seed):
    """A random row-stochastic (k, k) matrix with no zero entry."""
    c = torch.rand(k, k, generator=torch.Generator().manual_seed(seed)) + 0.05
    return c / c.sum(1, keepdim=True)


def test_confusion_method_is_fredriksons_map_estimator_from_top1_labels():
    """method="confusion" scores value v by log prior(v) + log C[y, argmax f(x_v)] (Fredrikson et al. 2014),
    computed here independently, record by record and value by value."""
    g = torch.Generator().manual_seed(8)
    x, weight = torch.randn(12, 4, generator=g), torch.randn(4, 3, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    values, prior, confusion = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([0.2, 0.5, 0.3]), _confusion(3, 0)
    scores = attribute_inference(_Linear(weight), x, y, attribute=2, values=values, prior=prior,
                                 method="confusion", confusion=confusion)
    expected = torch.empty(12, 3)
    for i in range(12):
        for j, v in enumerate(values):
            xv = x[i].clone()
            xv[2] = v
            said = int((xv @ weight).argmax())
            expected[i, j] = torch.log(prior[j]) + torch.log(confusion[y[i], said])
    assert torch.allclose(scores, expected, atol=1e-6)
    # without a prior: the confusion term alone (a uniform prior)
    plain = attribute_inference(_Linear(weight), x, y, attribute=2, values=values, method="confusion",
                                confusion=confusion)
    assert torch.allclose(plain, expected - prior.log(), atol=1e-6)
    # only the top-1 label counts: sharpening the model's confidences (same argmax) changes the confidence
    # method's scores but not these
    sharp = attribute_inference(_Linear(weight * 5), x, y, attribute=2, values=values, prior=prior,
                                method="confusion", confusion=confusion)
    assert torch.equal(sharp, scores)
    assert not torch.allclose(attribute_inference(_Linear(weight * 5), x, y, attribute=2, values=values),
                              attribute_inference(_Linear(weight), x, y, attribute=2, values=values))
    # ... which is why a label-only Oracle suffices for it, charged one query per record and value
    oracle = Oracle(_Linear(weight), output="label", clip_min=-10.0, clip_max=10.0)
    by_labels = attribute_inference(oracle, x, y, attribute=2, values=values, prior=prior, method="confusion",
                                    confusion=confusion)
    assert torch.allclose(by_labels, scores) and oracle.queries.tolist() == [3] * 12


def test_confusion_method_bad_input():
    x, y, weight = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]), torch.randn(3, 2)
    base = dict(model=_Linear(weight), x_known=x, y=y, attribute=1, values=torch.tensor([0.0, 1.0]))
    for kw, name in [(dict(method="map"), "method"), (dict(method="confusion"), "confusion"),
                     (dict(confusion=_confusion(2, 1)), "confusion"),          # given to method="confidence"
                     (dict(method="confusion", confusion=torch.rand(2, 3)), "confusion"),
                     (dict(method="confusion", confusion=torch.tensor([[0.5, 0.6], [0.5, 0.5]])), "confusion"),
                     (dict(method="confusion", confusion=torch.tensor([[1.5, -0.5], [0.5, 0.5]])), "confusion"),
                     (dict(method="confusion", confusion=torch.eye(1)), "confusion"),
                     (dict(method="confusion", confusion=_confusion(3, 1)[:, :2].contiguous()), "confusion")]:
        with pytest.raises(ValueError, match=name):
            attribute_inference(**{**base, **kw})
    with pytest.raises(TypeError, match="confusion"):
        attribute_inference(**base, method="confusion", confusion=torch.eye(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="y must"):   # a label outside the confusion matrix
        attribute_inference(**{**base, "y": torch.tensor([0, 1, 2, 1, 1])}, method="confusion",
                            confusion=_confusion(2, 2))
    says_2 = nn.Linear(3, 3)   # a 3-class model that always says class 2
    with torch.no_grad():
        says_2.weight.zero_(), says_2.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="confusion must be"):   # the model has more classes than the matrix
        attribute_inference(**{**base, "model": says_2}, method="confusion", confusion=_confusion(2, 2))


def test_baseline_agrees_with_scikit_learn_logistic_regression():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(150, 5, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0],
                                                                            dtype=torch.float64)
    attr = (x[:, 0] + x[:, 1] - x[:, 3] + torch.randn(150, generator=g, dtype=torch.float64) > 0).long()
    query = torch.randn(40, 5, generator=g, dtype=torch.float64)
    l2 = 0.05
    log_p = attribute_baseline(x, attr, query, l2=l2)
    mean, std = x.mean(0), x.std(0, unbiased=False)
    # The same model: the baseline's softmax has one weight vector per value, w0 and w1, penalised by
    # l2 (|w0|^2 + |w1|^2) / 2; at the optimum w1 = -w0 = w / 2, so it is the binary logistic regression on
    # w = w1 - w0 with penalty l2 |w|^2 / 4, which scikit-learn (|w|^2 / 2 + C sum(loss)) has at C = 2 / (l2 M).
    reference = LogisticRegression(C=2.0 / (l2 * len(x)), tol=1e-10, max_iter=10_000)
    reference.fit(((x - mean) / std).numpy(), attr.numpy())
    p_ref = reference.predict_proba(((query - mean) / std).numpy())
    assert np.allclose(log_p.exp().numpy(), p_ref, atol=2e-3)
    assert torch.equal(attribute_baseline(x, attr, query, l2=l2), log_p)  # deterministic


def test_without_attribute():
    x = torch.arange(12.0).view(3, 4)
    assert torch.equal(without_attribute(x, 1), x[:, [0, 2, 3]])
    assert torch.equal(without_attribute(x, 3), x[:, :3])
    with pytest.raises(ValueError, match="attribute"):
        without_attribute(x, 4)


def test_bad_input():
    x, y, weight = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]), torch.randn(3, 2)
    model, values = _Linear(weight), torch.tensor([0.0, 1.0])
    call = lambda **kw: attribute_inference(**{**dict(model=model, x_known=x, y=y, attribute=1, values=values), **kw})
    with pytest.raises(TypeError, match="model"):
        call(model=lambda t: t)
    for kw, name in [(dict(attribute=3), "attribute"), (dict(attribute=-1), "attribute"),
                     (dict(values=torch.tensor([1.0])), "values"),
                     (dict(values=torch.tensor([0.0, float("nan")])), "values"),
                     (dict(y=y[:4]), "y"), (dict(y=torch.tensor([0, 1, 0, 1, 2])), "y"),
                     (dict(prior=torch.tensor([0.5, 0.6])), "prior"),
                     (dict(prior=torch.tensor([0.5, 0.3, 0.2])), "prior"),
                     (dict(prior=torch.tensor([1.5, -0.5])), "prior"), (dict(x_known=torch.randn(5)), "x_known")]:
        with pytest.raises(ValueError, match=name):
            call(**kw)
    attr = torch.tensor([0, 1, 1, 0, 1])
    for kw, name in [(dict(x_query=torch.randn(2, 4)), "x_query"), (dict(attr=attr[:3]), "attr"),
                     (dict(num_values=1), "num_values"), (dict(attr=attr * 2, num_values=2), "attr"),
                     (dict(l2=-1.0), "l2"), (dict(max_iter=0), "max_iter")]:
        with pytest.raises(ValueError, match=name):
            attribute_baseline(**{**dict(x_other=x, attr=attr, x_query=torch.randn(2, 3)), **kw})
