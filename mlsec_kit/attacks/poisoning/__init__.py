"""Poisoning attacks: change the training data so that the learned model fails (chapters *Poisoning* and
*Backdoors*). Every attack returns ``(x_poisoned, y_poisoned, poisoned_indices)`` and leaves its inputs
unchanged; ``round(rate * n)`` points are poisoned (:func:`num_poisoned`).

Performance degradation:

- :func:`random_label_flip`, :func:`targeted_label_flip`: flip labels at random or where a model is surest
  (Xiao, Xiao & Eckert 2012);
- :func:`gradient_poisoning`: poison points moved along the gradient of the retrained learner's validation
  loss, by implicit differentiation (Biggio, Nelson & Laskov 2012; Muñoz-González et al. 2017); white box, or
  black box through a surrogate.

Targeted poisoning:

- :func:`feature_collision`, :func:`poison_frogs`: clean-label poisons that collide with a target in feature
  space (Shafahi et al. 2018); :func:`retrain_head`, :func:`targeted_success` for the transfer-learning victim.

Backdoors:

- :class:`Trigger`, :func:`patch_trigger`, :func:`blended_trigger`; :func:`badnets` (Gu, Dolan-Gavitt & Garg
  2017), :func:`clean_label_backdoor` (Turner, Tsipras & Madry 2019), :func:`attack_success_rate`.
"""
from .backdoor import (CORNERS, Trigger, attack_success_rate, badnets, blended_trigger, clean_label_backdoor,
                       patch_trigger, poison_count)
from .feature_collision import TargetedResult, feature_collision, poison_frogs, retrain_head, targeted_success
from .gradient import fit_logistic_regression, gradient_poisoning, implicit_poison_gradient
from .label_flip import num_poisoned, random_label_flip, targeted_label_flip

__all__ = [
    "random_label_flip", "targeted_label_flip", "num_poisoned", "poison_count",
    "gradient_poisoning", "fit_logistic_regression", "implicit_poison_gradient",
    "feature_collision", "poison_frogs", "retrain_head", "targeted_success", "TargetedResult",
    "Trigger", "patch_trigger", "blended_trigger", "badnets", "clean_label_backdoor", "attack_success_rate",
    "CORNERS",
]
