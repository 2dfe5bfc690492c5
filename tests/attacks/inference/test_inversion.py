"""Model inversion (Fredrikson et al. 2015) on the digits: the reconstruction of a class is classified as the
class with high confidence and lies nearer that class's mean image than any other class's; rounding or
noising the API's confidences starves the black-box attack's gradient estimate."""
import copy

import numpy as np
import pytest
import torch

from mlsec_kit.attacks.evasion import Oracle
from mlsec_kit.attacks.inference.inversion import (defended_query, model_inversion, model_inversion_black_box,
                                                    noisy_confidences, round_confidences)

from trained_models import digits, digits_mlp, digits_softmax  # noqa: F401  (shared fixtures)

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def class_means(digits):
    return torch.stack([digits.X_train[digits.y_train == c].mean(0) for c in range(10)])


def _measure(model, reconstructions, class_means):
    """Mean confidence in the target class, and how many reconstructions are nearest their own class mean."""
    confidence, nearest = [], 0
    with torch.no_grad():
        for c, x in enumerate(reconstructions):
            confidence.append(torch.softmax(model(x), 1)[0, c].item())
            nearest += int(((class_means - x) ** 2).flatten(1).sum(1).argmin()) == c
    return sum(confidence) / len(confidence), min(confidence), nearest


@pytest.mark.parametrize("victim", ["digits_mlp", "digits_softmax"])
def test_white_box_inversion_recovers_each_class(victim, request, class_means):
    model = request.getfixturevalue(victim)
    recs = [model_inversion(model, c, input_shape=SHAPE, steps=100, lr=1.0) for c in range(10)]
    mean_conf, min_conf, nearest = _measure(model, recs, class_means)
    assert min_conf > 0.95 and nearest == 10          # measured: min confidence 0.998, 10 of 10 (both models)
    for x in recs:
        assert x.shape == (1, *SHAPE) and x.min() >= 0 and x.max() <= 1      # projected onto the input range
    # The baseline: the starting image (all zeros) is nearest one class's mean, with chance confidence.
    start_conf, _, start_nearest = _measure(model, [torch.zeros(1, *SHAPE)] * 10, class_means)
    assert start_nearest <= 1 and abs(start_conf - 0.1) < 1e-6
    # Without the projection the descent leaves the image range: the projection is doing work.
    assert any((x == 1).any() for x in recs)


def test_agrees_with_art_mi_face(digits_mlp):
    """ART's MIFace takes the same projected steps along the gradient of p_class (on a model that outputs
    probabilities); with its stopping rule switched off (threshold 1, a window longer than the run) it must give
    the same images."""
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification import PyTorchClassifier

    probs_model = torch.nn.Sequential(digits_mlp, torch.nn.Softmax(1))
    clf = PyTorchClassifier(probs_model, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=10,
                            clip_values=(0.0, 1.0))
    art = MIFace(clf, max_iter=100, window_length=101, threshold=1.0, learning_rate=1.0, batch_size=10,
                 verbose=False).infer(None, np.arange(10))
    ours = torch.cat([model_inversion(digits_mlp, c, input_shape=SHAPE, steps=100, lr=1.0) for c in range(10)])
    assert np.abs(art - ours.numpy()).max() < 1e-4            # measured: 3.6e-7


def test_the_prior_darkens_the_reconstruction(digits_mlp):
    ink = [model_inversion(digits_mlp, 3, input_shape=SHAPE, steps=100, lr=1.0, lam=lam).pow(2).mean().item()
           for lam in (0.0, 1.0, 5.0)]
    assert ink[0] > ink[1] > ink[2]


def test_black_box_gradient_estimate_matches_white_box(digits_mlp, class_means):
    white = model_inversion(digits_mlp, 7, input_shape=SHAPE, steps=100, lr=1.0)
    oracle = Oracle(digits_mlp)
    black = model_inversion_black_box(oracle, 7, input_shape=SHAPE, steps=100, lr=1.0)
    assert oracle.total == 100 * 2 * 64                   # two queries per pixel per step
    assert (white - black).abs().max() < 0.05


def test_rounding_and_noise_degrade_black_box_inversion(digits_mlp, class_means):
    def run(**defence):
        recs = [model_inversion_black_box(defended_query(digits_mlp, generator=torch.Generator().manual_seed(c),
                                                         **defence), c, input_shape=SHAPE, steps=100, lr=1.0)
                for c in range(10)]
        return _measure(digits_mlp, recs, class_means)

    exact = run()
    rounded = {d: run(decimals=d) for d in (1, 2, 3)}
    noised = {s: run(sigma=s) for s in (1e-3, 1e-2)}
    # Measured: mean confidence exact 0.999; rounded to 3/2/1 decimals 0.986/0.42/0.10 (nearest-mean 10/5/1 of
    # 10); noise 1e-3/1e-2 gives 0.97/0.10 (9/0 of 10).
    assert exact[0] > 0.99 and exact[2] == 10
    assert exact[0] > rounded[3][0] > rounded[2][0] > rounded[1][0]
    assert rounded[1][0] < 0.2 and rounded[1][2] <= 2 and rounded[2][2] <= 7
    assert exact[0] > noised[1e-3][0] > noised[1e-2][0]
    assert noised[1e-2][0] < 0.3 and noised[1e-2][2] <= 3


def test_round_and_noise_defences():
    probs = torch.softmax(torch.randn(50, 10, generator=torch.Generator().manual_seed(0)), 1)
    r = round_confidences(probs, decimals=2)
    assert torch.allclose(r * 100, (r * 100).round(), atol=1e-4) and (r - probs).abs().max() <= 0.005 + 1e-6
    n1 = noisy_confidences(probs, sigma=0.05, generator=torch.Generator().manual_seed(1))
    n2 = noisy_confidences(probs, sigma=0.05, generator=torch.Generator().manual_seed(1))
    assert torch.equal(n1, n2) and not torch.allclose(n1, probs, atol=1e-3)
    assert torch.allclose(n1.sum(1), torch.ones(50), atol=1e-5) and n1.min() >= 0
    assert torch.allclose(noisy_confidences(probs, sigma=0.0), probs, atol=1e-6)
    before = probs.clone()
    round_confidences(probs, decimals=1), noisy_confidences(probs, sigma=0.1)
    assert torch.equal(probs, before)                      # inputs are not modified


def test_the_sum_check_follows_the_rounding_of_a_defended_api(digits_mlp):
    """Rounding to 0 decimals legitimately gives all-zero rows (no class at 0.5 or more): a defended_query says
    how it rounds, so the black-box attack accepts its answers; an API whose rows sum to 1.4 is rejected."""
    for decimals in (0, 1, 2):
        api = defended_query(digits_mlp, decimals=decimals)
        assert api.decimals == decimals
        x = model_inversion_black_box(api, 3, input_shape=SHAPE, steps=2, lr=1.0)
        assert x.shape == (1, *SHAPE) and x.min() >= 0 and x.max() <= 1
    assert defended_query(digits_mlp).decimals is None
    with torch.no_grad():
        answers = defended_query(digits_mlp, decimals=0)(torch.rand(200, *SHAPE, generator=torch.Generator()
                                                                    .manual_seed(0)))
    assert (answers.sum(1) == 0).any()                    # the rows the old fixed check rejected exist
    scaled = lambda x: 1.4 * torch.softmax(digits_mlp(x), 1)    # noqa: E731  (every value still <= 1)
    with pytest.raises(ValueError, match="sum to 1"):
        model_inversion_black_box(scaled, 0, input_shape=SHAPE, steps=1)
    model_inversion_black_box(scaled, 0, input_shape=SHAPE, steps=1, sum_atol=0.5)   # explicitly tolerated
    with pytest.raises(ValueError, match="sum_atol"):
        model_inversion_black_box(defended_query(digits_mlp), 0, input_shape=SHAPE, steps=1, sum_atol=-1.0)


def test_a_float64_model_is_inverted_in_float64(digits_mlp):
    model64 = copy.deepcopy(digits_mlp).double()
    x = model_inversion(model64, 4, input_shape=SHAPE, steps=20, lr=1.0)
    assert x.dtype == torch.float64
    x32 = model_inversion(digits_mlp, 4, input_shape=SHAPE, steps=20, lr=1.0)
    assert (x - x32.double()).abs().max() < 1e-3          # the same descent, in more precision
    init = torch.full(SHAPE, 0.5)                         # a float32 init follows the model's dtype too
    assert model_inversion(model64, 4, input_shape=SHAPE, steps=2, init=init).dtype == torch.float64


def test_the_defences_reject_logits():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0)) * 3
    with pytest.raises(ValueError, match="probs"):
        round_confidences(logits, decimals=2)
    with pytest.raises(ValueError, match="probs"):
        noisy_confidences(logits, sigma=0.1)
    with pytest.raises(ValueError, match="probs"):
        noisy_confidences(logits.softmax(1) * 2, sigma=0.1)      # in [0, 1] but rows summing to 2


def test_inputs_are_not_modified(digits_mlp):
    init = torch.full(SHAPE, 0.5)
    before = init.clone()
    x = model_inversion(digits_mlp, 2, input_shape=SHAPE, steps=5, lr=1.0, init=init)
    assert torch.equal(init, before) and not torch.equal(x[0], init)
    digits_mlp.train()
    model_inversion(digits_mlp, 2, input_shape=SHAPE, steps=2)
    assert digits_mlp.training                              # the caller's mode is restored
    digits_mlp.eval()


def test_bad_input_names_the_argument(digits_mlp):
    with pytest.raises(ValueError, match="target_class"):
        model_inversion(digits_mlp, 10, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="target_class"):
        model_inversion(digits_mlp, -1, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="steps"):
        model_inversion(digits_mlp, 0, input_shape=SHAPE, steps=0)
    with pytest.raises(ValueError, match="lam"):
        model_inversion(digits_mlp, 0, input_shape=SHAPE, lam=-1.0)
    with pytest.raises(ValueError, match="init"):
        model_inversion(digits_mlp, 0, input_shape=SHAPE, init=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        model_inversion(digits_mlp, 0, input_shape=(0, 8))
    with pytest.raises(TypeError, match="model"):
        model_inversion(lambda x: x, 0, input_shape=SHAPE)
    with pytest.raises(ValueError, match="labels"):
        model_inversion_black_box(Oracle(digits_mlp, output="label"), 0, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="sum to 1"):
        model_inversion_black_box(lambda x: digits_mlp(x).detach().sigmoid(), 0, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="shape"):
        model_inversion_black_box(lambda x: torch.full((3, 10), 0.1), 0, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="target_class"):
        model_inversion_black_box(defended_query(digits_mlp), 12, input_shape=SHAPE, steps=1)
    with pytest.raises(ValueError, match="fd_step"):
        model_inversion_black_box(defended_query(digits_mlp), 0, input_shape=SHAPE, fd_step=0.0)
    with pytest.raises(ValueError, match="decimals"):
        round_confidences(torch.full((2, 3), 1 / 3), decimals=-1)
    with pytest.raises(ValueError, match="sigma"):
        noisy_confidences(torch.full((2, 3), 1 / 3), sigma=-0.1)
