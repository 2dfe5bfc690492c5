"""The FedAvg loop: learning, reproducibility client by client, robust rules against poisoned clients, the
backdoor by model replacement, secure aggregation inside the loop, and DP-FedAvg's clipping, noise and ε."""
import pytest
import torch

from mlsec_kit.attacks.poisoning import attack_success_rate, patch_trigger
from mlsec_kit.data import load_digits
from mlsec_kit.dp.accounting import rdp_epsilon
from mlsec_kit.fl import (Client, DPFedAvg, ModelPoisoning, aggregate, backdoor_client, client_seed,
                          dirichlet_partition, fedavg, flatten_update, iid_partition, sample_clients)
from mlsec_kit.models import logistic_regression

ROUNDS = 8


@pytest.fixture(scope="module")
def setup():
    ds = load_digits()
    parts = iid_partition(len(ds.y_train), clients=10, generator=torch.Generator().manual_seed(0))
    clients = [Client(ds.X_train[p], ds.y_train[p], cid=i) for i, p in enumerate(parts)]
    torch.manual_seed(0)
    model = logistic_regression(ds.input_shape, 10)
    return ds, clients, model


def _run(setup, **kw):
    ds, clients, model = setup
    kw.setdefault("rounds", ROUNDS)
    kw.setdefault("lr", 0.5)
    return fedavg(model, kw.pop("clients", clients), generator=torch.Generator().manual_seed(1),
                  test=(ds.X_test, ds.y_test), **kw)


def test_fedavg_learns_and_leaves_the_model_alone(setup):
    _, _, model = setup
    before = flatten_update(model)
    h = _run(setup)
    assert h.rounds == ROUNDS and len(h.accuracy) == ROUNDS
    assert h.accuracy[0] < h.accuracy[-1] and h.accuracy[-1] > 0.85
    assert torch.equal(flatten_update(model), before)
    assert h.clients == [list(range(10))] * ROUNDS
    d = before.numel()
    assert h.bytes[0] == 10 * d * 4 + 10 * (d * 4 + 8)  # model down, update and example count up
    again = _run(setup)
    assert again.accuracy == h.accuracy and torch.equal(flatten_update(again.model), flatten_update(h.model))


def test_label_skew_slows_fedavg(setup):
    ds, clients, _ = setup
    parts = dirichlet_partition(ds.y_train, clients=10, alpha=0.1, min_size=5,
                                generator=torch.Generator().manual_seed(0))
    skewed = [Client(ds.X_train[p], ds.y_train[p], cid=i) for i, p in enumerate(parts)]
    iid = _run(setup, rounds=3, local_epochs=3)
    non_iid = _run(setup, rounds=3, local_epochs=3, clients=skewed)
    assert non_iid.accuracy[-1] < iid.accuracy[-1] - 0.15


def test_the_loop_is_reproducible_client_by_client(setup):
    """What another engine (Flower) must do to give the same run: the documented order of draws."""
    ds, clients, model = setup
    h = _run(setup, rounds=2, fraction=0.5, local_epochs=2, batch_size=16)
    g = torch.Generator().manual_seed(1)
    base = int(torch.randint(0, 2 ** 62, (1,), generator=g).item())
    w = flatten_update(model)
    import copy
    current = copy.deepcopy(model)
    for r in range(2):
        chosen = sample_clients(10, fraction=0.5, generator=g)
        assert chosen == h.clients[r]
        ups = [clients[c].local_update(current, epochs=2, lr=0.5, batch_size=16,
                                       generator=torch.Generator().manual_seed(client_seed(base, r, c)))
               for c in chosen]
        w = w + aggregate([u.delta for u in ups], [u.num_examples for u in ups], method="mean")
        torch.nn.utils.vector_to_parameters(w, current.parameters())
    assert torch.allclose(w, flatten_update(h.model), atol=1e-6)


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean", "krum", "multi_krum"])
def test_robust_rules_hold_against_a_sign_flipping_client_where_the_mean_does_not(setup, aggregator):
    attack = {0: ModelPoisoning("sign_flip", 10.0)}
    mean = _run(setup, attackers=attack)
    robust = _run(setup, attackers=attack, aggregator=aggregator, aggregator_options={"byzantine": 1, "trim": 0.1})
    assert mean.accuracy[-1] < 0.3
    assert robust.accuracy[-1] > 0.8


def test_model_replacement_plants_the_backdoor_and_the_median_stops_it(setup):
    ds, clients, _ = setup
    trig = patch_trigger(ds.input_shape, size=3)
    bad = backdoor_client(clients[0].x, clients[0].y, target=0, rate=0.5, trigger=trig,
                          generator=torch.Generator().manual_seed(2))
    poisoned = [bad] + clients[1:]
    asr = lambda m: {"asr": attack_success_rate(m, ds.X_test, ds.y_test, target=0, trigger=trig)}
    boosted = {0: ModelPoisoning("scale", 10.0)}  # gamma = n / eta = 10 near-equal IID clients / server lr 1
    plain = _run(setup, clients=poisoned, metrics=asr)
    replaced = _run(setup, clients=poisoned, metrics=asr, attackers=boosted)
    median = _run(setup, clients=poisoned, metrics=asr, attackers=boosted, aggregator="median")
    assert replaced.metrics[-1]["asr"] > 0.9 > plain.metrics[-1]["asr"] + 0.3
    assert median.metrics[-1]["asr"] < 0.1 and median.accuracy[-1] > 0.85


def test_secure_aggregation_in_the_loop_matches_the_plain_mean(setup):
    plain = _run(setup, rounds=3)
    secure = _run(setup, rounds=3, secure=True)
    assert torch.allclose(flatten_update(secure.model), flatten_update(plain.model), atol=1e-4)
    assert secure.bytes[0] > plain.bytes[0]
    dropped = _run(setup, rounds=3, secure=True, dropout=0.3)
    assert any(len(s) < len(c) for s, c in zip(dropped.survivors, dropped.clients))
    assert dropped.accuracy[-1] > 0.5


def _tiny_federation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return [Client(x[i * 20:(i + 1) * 20], y[i * 20:(i + 1) * 20], cid=i) for i in range(10)]


def test_secure_rounds_short_of_survivors_are_aborted_not_fatal():
    # Bonawitz et al.: a round with fewer than t survivors is aborted and the next one starts. Over 20 seeds some
    # round falls short (dropout 0.3 of 10 clients, t = 6): no run may raise, an aborted round leaves the model
    # where it was, and the other rounds still aggregate
    clients, model = _tiny_federation(), torch.nn.Linear(4, 2)
    aborted_rounds = applied_rounds = 0
    for seed in range(12):
        flat = [flatten_update(model)]
        h = fedavg(model, clients, rounds=4, lr=0.5, secure=True, dropout=0.3,
                   generator=torch.Generator().manual_seed(seed),
                   metrics=lambda m: flat.append(flatten_update(m)) or {})
        assert h.aborted == [len(s) < 6 for s in h.survivors]
        for r, a in enumerate(h.aborted):  # an aborted round leaves the model as the previous round left it
            assert torch.equal(flat[r + 1], flat[r]) == a
        aborted_rounds += sum(h.aborted)
        applied_rounds += len(h.aborted) - sum(h.aborted)
    assert aborted_rounds > 0 and applied_rounds > 0  # both branches exercised


def test_dp_fedavg_with_secure_aggregation_survives_tiny_samples():
    # Poisson sampling at q = 0.15 of 10 clients often draws 0 or 1 client: such a round is aborted, but DP-FedAvg
    # still takes its noise-only step (the model moves), so every round counts in the accountant (steps = rounds)
    clients, model = _tiny_federation(), torch.nn.Linear(4, 2)
    flat = [flatten_update(model)]
    h = fedavg(model, clients, rounds=8, fraction=0.15, secure=True, dp=DPFedAvg(clip=1.0, noise_multiplier=1.0),
               generator=torch.Generator().manual_seed(0), metrics=lambda m: flat.append(flatten_update(m)) or {})
    assert any(len(c) < 2 for c in h.clients) and h.aborted == [len(c) < 2 for c in h.clients]
    assert all(not torch.equal(flat[r + 1], flat[r]) for r in range(8))
    assert h.epsilon == [rdp_epsilon(noise_multiplier=1.0, sample_rate=0.15, steps=r + 1, delta=1e-5)
                         for r in range(8)]


def test_dp_fedavg_clips_adds_noise_divided_by_the_expected_count_and_accounts(setup):
    _, clients, model = setup
    # no noise to speak of and a huge bound: the step is the UNWEIGHTED sum over the EXPECTED number q*K, not
    # over the realised number of sampled clients (Poisson sampling: here 4 of 10 at q = 0.5)
    exact = _run(setup, rounds=1, fraction=0.5, dp=DPFedAvg(clip=1e6, noise_multiplier=1e-12))
    g = torch.Generator().manual_seed(1)
    base = int(torch.randint(0, 2 ** 62, (1,), generator=g).item())
    chosen = sample_clients(10, fraction=0.5, generator=g, poisson=True)
    assert chosen == exact.clients[0] and len(chosen) != 5
    ups = [clients[c].local_update(model, epochs=1, lr=0.5, batch_size=32,
                                   generator=torch.Generator().manual_seed(client_seed(base, 0, c))) for c in chosen]
    expected = flatten_update(model) + sum(u.delta for u in ups) / 5
    assert torch.allclose(flatten_update(exact.model), expected, atol=1e-6)
    # clipping: with a tiny bound the step is at most clip (sum of K clipped updates / K)
    clipped = _run(setup, rounds=1, fraction=1.0, dp=DPFedAvg(clip=1e-3, noise_multiplier=1e-12))
    assert (flatten_update(clipped.model) - flatten_update(model)).norm() <= 1e-3 + 1e-9
    # noise of standard deviation sigma*C on the sum, divided by q*K
    noisy = _run(setup, rounds=1, fraction=1.0, dp=DPFedAvg(clip=1e-3, noise_multiplier=5.0))
    step = flatten_update(noisy.model) - flatten_update(model)
    d = step.numel()
    assert step.norm().item() == pytest.approx(5.0 * 1e-3 * d ** 0.5 / 10, rel=0.15)
    h = _run(setup, rounds=4, fraction=0.3, dp=DPFedAvg(clip=1.0, noise_multiplier=1.1, delta=1e-4))
    assert h.epsilon == pytest.approx([rdp_epsilon(noise_multiplier=1.1, sample_rate=0.3, steps=r, delta=1e-4)
                                       for r in range(1, 5)])
    assert any(len(c) != 3 for c in h.clients)  # Poisson sampling: the count varies


def test_sample_clients():
    g = torch.Generator().manual_seed(0)
    assert len(sample_clients(10, fraction=0.25, generator=g)) == 2
    assert sample_clients(10, fraction=1.0, generator=g) == list(range(10))
    counts = [len(sample_clients(100, fraction=0.2, generator=g, poisson=True)) for _ in range(50)]
    assert 15 < sum(counts) / 50 < 25 and len(set(counts)) > 3


@pytest.mark.parametrize("kw, exc, match", [
    (dict(secure=True, aggregator="median"), ValueError, "aggregator must be 'mean'"),
    (dict(dp=DPFedAvg(clip=1.0, noise_multiplier=1.0), aggregator="krum"), ValueError, "aggregator must be 'mean'"),
    (dict(attackers={10: ModelPoisoning("sign_flip")}), ValueError, "attackers"),
    (dict(attackers={0: "sign_flip"}), TypeError, "ModelPoisoning"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(fraction=0.0), ValueError, "fraction"),
    (dict(rounds=0), ValueError, "rounds"),
    (dict(aggregator="mode"), ValueError, "aggregator must be one of"),
    (dict(aggregator_options={"beta": 0.1}), ValueError, "aggregator_options"),
    (dict(secure=True, fraction=0.1), ValueError, "at least 2 clients per round"),
    (dict(secure=True, fraction=0.5, threshold=6), ValueError, "threshold must be an int in \\[2, 5\\]: 5 clients"),
    (dict(secure=True, threshold=1), ValueError, "threshold must be an int in \\[2, 10\\]"),
    (dict(threshold=3), ValueError, "only with secure=True"),
    (dict(secure=True, dp=DPFedAvg(clip=1.0, noise_multiplier=1.0), threshold=1), ValueError,
     "threshold must be an int >= 2"),
    (dict(clients=["a"]), TypeError, "Client"),
])
def test_bad_input(setup, kw, exc, match):
    with pytest.raises(exc, match=match):
        _run(setup, **{"rounds": 1, **kw})


def test_dp_settings_are_checked():
    with pytest.raises(ValueError, match="clip"):
        DPFedAvg(clip=0.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="delta"):
        DPFedAvg(clip=1.0, noise_multiplier=1.0, delta=1.0)


def test_clip_update_and_set_flat_params():
    from mlsec_kit.fl import clip_update, set_flat_params
    from mlsec_kit.models import mlp
    d = torch.tensor([3.0, 4.0])
    assert torch.allclose(clip_update(d, 1.0), torch.tensor([0.6, 0.8]))
    assert torch.equal(clip_update(d, 10.0), d)  # inside the ball: unchanged
    with pytest.raises(ValueError, match="clip"):
        clip_update(d, 0.0)
    model = mlp((3,), 2, hidden=(4,))
    v = torch.arange(float(flatten_update(model).numel()))
    set_flat_params(model, v)
    assert torch.equal(flatten_update(model), v)
    with pytest.raises(ValueError, match="entries"):
        set_flat_params(model, v[:-1])


def test_mismatched_data_is_refused_before_round_one(setup):
    ds, clients, model = setup
    with pytest.raises(ValueError, match=r"clients do not fit model: clients\[0\]'s inputs"):
        fedavg(torch.nn.Linear(5, 2), clients, rounds=1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"test do not fit model"):
        fedavg(model, clients, rounds=1, test=(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long)),
               generator=torch.Generator().manual_seed(0))
    wrong = clients[:3] + [Client(clients[3].x, clients[3].y + 10, cid=3)]
    with pytest.raises(ValueError, match=r"clients\[3\] has label 1\d, the model has 10 outputs"):
        fedavg(model, wrong, rounds=1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="x must be finite"):
        Client(torch.full((2, 4), float("nan")), torch.zeros(2, dtype=torch.long))
