"""Privacy attacks that extract information from a trained model: membership and attribute inference, model
inversion, model extraction and gradient leakage (chapters 8 and 9). Attacks return scores (higher = more likely
member / more likely value), so :mod:`.metrics` analyses them all the same way."""
from .attribute import attribute_baseline, attribute_inference, without_attribute
from .extraction import agreement, agreement_curve, check_probabilities, extract_by_training, extract_softmax_regression
from .gradient_leakage import (Reconstruction, ReconstructionError, dlg, gradient_matching_loss, idlg, idlg_label,
                               noisy_gradients, prune_gradients, reconstruction_error, shared_gradients, sigmoid_lenet,
                               sigmoid_mlp)
from .inversion import defended_query, model_inversion, model_inversion_black_box, noisy_confidences, round_confidences
from .label_only import METHODS, label_only_membership
from .membership import (ShadowModels, calibrated_loss_scores, global_threshold, lira_offline, lira_online,
                         loss_threshold_scores, per_example_loss, scaled_confidence, shadow_attack, train_shadow_models)
from .metrics import (TPRAtFPR, auc, auc_chance_interval, balanced_accuracy, best_balanced_accuracy, clopper_pearson,
                      plot_roc, roc, tpr_at_fpr)

__all__ = [
    "roc", "auc", "balanced_accuracy", "best_balanced_accuracy", "tpr_at_fpr", "TPRAtFPR", "clopper_pearson",
    "auc_chance_interval", "plot_roc",
    "per_example_loss", "loss_threshold_scores", "global_threshold", "calibrated_loss_scores", "scaled_confidence",
    "ShadowModels", "train_shadow_models", "lira_online", "lira_offline", "shadow_attack",
    "label_only_membership", "METHODS", "attribute_inference", "attribute_baseline", "without_attribute",
    "model_inversion", "model_inversion_black_box", "round_confidences", "noisy_confidences", "defended_query",
    "extract_softmax_regression", "extract_by_training", "agreement", "agreement_curve", "check_probabilities",
    "sigmoid_lenet", "sigmoid_mlp", "shared_gradients", "gradient_matching_loss", "dlg", "idlg_label", "idlg",
    "noisy_gradients", "prune_gradients", "reconstruction_error", "Reconstruction", "ReconstructionError",
]
