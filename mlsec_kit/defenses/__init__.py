"""Defences against evasion (chapter *Defending against evasion*); later against poisoning and backdoors.

Evaluation, the part most defence papers get wrong:

- :func:`robust_accuracy`: clean accuracy, accuracy under each attack of an ensemble (FGSM, PGD, APGD with
  cross-entropy and DLR, Square, HopSkipJump) and the per-example worst case (Croce & Hein 2020).

Adversarial training (the min-max objective of Madry et al. 2018):

- :func:`adversarial_fit`, :func:`adversarial_training_step`, :func:`inner_max`: PGD-AT, fast AT with a
  random start (Wong, Rice & Kolter 2020), TRADES (Zhang et al. 2019).

Gradient masking, made and broken (Athalye, Carlini & Wagner 2018):

- :class:`QuantizedInput`, :class:`RandomizedInput`, :class:`SaturatedSoftmax`: defences that look strong
  against gradient attacks; :func:`bpda` and :func:`eot_pgd`: the adaptive attacks that break them.

Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019):

- :func:`noise_augmented_fit`, :func:`sample_counts`, :func:`smoothed_predict`, :func:`certify`,
  :func:`clopper_pearson_lower`, :func:`certified_accuracy`.

Against poisoning and backdoors (chapters *Poisoning* and *Backdoors*):

- :func:`loss_sanitize`, :func:`outlier_sanitize`: drop suspicious training points; :func:`flag_scores`
  scores any detector's flags (precision, recall, false-positive rate);
- :func:`spectral_signatures` (Tran, Li & Madry 2018), :func:`activation_clustering` (Chen et al. 2018):
  inspect the training set's representations (:func:`features`);
- :func:`strip`, :func:`strip_threshold` (Gao et al. 2019): flag triggered inputs at inference;
- :func:`neural_cleanse`, :func:`mad_anomaly_index` (Wang et al. 2019): reverse-engineer a trigger per label;
- :func:`fine_prune` (Liu, Dolan-Gavitt & Garg 2018): prune dormant units, then fine-tune.
"""
from .adversarial_training import METHODS, adversarial_fit, adversarial_training_step, inner_max
from .evaluation import ATTACKS, RobustReport, robust_accuracy
from .masking import MaskingDefense, QuantizedInput, RandomizedInput, SaturatedSoftmax, bpda, eot_pgd
from .backdoor import (NeuralCleanse, activation_clustering, features, fine_prune, mad_anomaly_index,
                       neural_cleanse, spectral_signatures, strip, strip_threshold)
from .sanitization import loss_sanitize, outlier_sanitize
from .scoring import flag_scores
from .smoothing import (ABSTAIN, certified_accuracy, certify, clopper_pearson_lower, noise_augmented_fit,
                        sample_counts, smoothed_predict)

__all__ = [
    "robust_accuracy", "RobustReport", "ATTACKS",
    "adversarial_fit", "adversarial_training_step", "inner_max", "METHODS",
    "MaskingDefense", "QuantizedInput", "RandomizedInput", "SaturatedSoftmax", "bpda", "eot_pgd",
    "noise_augmented_fit", "sample_counts", "smoothed_predict", "certify", "clopper_pearson_lower",
    "certified_accuracy", "ABSTAIN",
    "loss_sanitize", "outlier_sanitize", "flag_scores",
    "features", "spectral_signatures", "activation_clustering", "strip", "strip_threshold",
    "mad_anomaly_index", "NeuralCleanse", "neural_cleanse", "fine_prune",
]
