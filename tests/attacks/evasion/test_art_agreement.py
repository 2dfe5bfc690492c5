"""The kit's attacks agree with the Adversarial Robustness Toolbox (ART) on the same model and inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlsec_kit.attacks.evasion import deepfool, fgsm, pgd
from mlsec_kit.train import accuracy, predict

art = pytest.importorskip("art")
from art.attacks.evasion import DeepFool, FastGradientMethod, ProjectedGradientDescent  # noqa: E402
from art.estimators.classification import PyTorchClassifier  # noqa: E402


@pytest.fixture(scope="module")
def classifier(cnn, digits):
    return PyTorchClassifier(cnn, loss=torch.nn.CrossEntropyLoss(), input_shape=digits.input_shape,
                             nb_classes=digits.num_classes, clip_values=(0.0, 1.0), device_type="cpu")


@pytest.mark.parametrize("eps", [0.05, 0.2])
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_art_fast_gradient_method(cnn, classifier, test_batch, eps, targeted):
    x, y = test_batch
    labels = (y + 1) % 10 if targeted else y
    ours = fgsm(cnn, x, labels, eps=eps, targeted=targeted)
    theirs = FastGradientMethod(classifier, norm=np.inf, eps=eps, targeted=targeted, batch_size=len(x)
                                ).generate(x.numpy(), y=labels.numpy())
    assert np.abs(ours.numpy() - theirs).max() <= 1e-6


@pytest.mark.parametrize("norm, art_norm, eps", [("linf", np.inf, 0.15), ("l2", 2, 1.0)])
def test_pgd_agrees_with_art_example_by_example(cnn, classifier, test_batch, norm, art_norm, eps):
    """Same steps, same order (step, clip to the range, project onto the ball): the same points, up to float
    rounding, for every example; not merely a similar accuracy."""
    x, y = test_batch
    steps, alpha = 10, 2.5 * eps / 10
    ours = pgd(cnn, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm)
    attack = ProjectedGradientDescent(classifier, norm=art_norm, eps=eps, eps_step=alpha, max_iter=steps,
                                      num_random_init=0, batch_size=len(x), verbose=False)
    theirs = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
    assert accuracy(cnn, x, y) - accuracy(cnn, ours, y) > 0.5           # the attack does something...
    assert (ours - theirs).flatten(1).abs().amax(1).max() <= 1e-4       # ...and the same thing as ART's
    assert torch.equal(predict(cnn, ours).argmax(1), predict(cnn, theirs).argmax(1))


def test_deepfool_close_to_art_deepfool(cnn, classifier, test_batch):
    x, y = test_batch
    x, y = x[:100], y[:100]
    pred = predict(cnn, x).argmax(1)  # ART's DeepFool starts from the model's prediction
    ours = deepfool(cnn, x, pred, steps=50, overshoot=0.02)
    theirs = torch.from_numpy(DeepFool(classifier, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=len(x),
                                       verbose=False).generate(x.numpy()))
    flipped = lambda v: (predict(cnn, v).argmax(1) != pred).float().mean().item()  # noqa: E731
    assert flipped(ours) > 0.95 and flipped(theirs) > 0.95
    n_ours = (ours - x).flatten(1).norm(dim=1).median()
    n_theirs = (theirs - x).flatten(1).norm(dim=1).median()
    assert abs(n_ours - n_theirs) <= 0.15 * n_theirs
