"""Differential privacy: mechanisms, calibration, clipped queries, composition, a budget and an audit.

Each function states its privacy guarantee, and the neighbouring relation it holds under, where it is defined.
An analysis declares one relation, ``"add_remove"`` or ``"replace"`` (:data:`NEIGHBOURS`), and passes it to
the :class:`PrivacyBudget` and to every query and mechanism (``neighbours=...``); sensitivities follow it, and a
charge under the other relation is refused. Randomness comes only from the ``generator``
the caller passes, so a seeded generator gives reproducible releases (which is what a textbook wants and
what a real deployment must not do with a guessable seed).
"""
from ._validate import NEIGHBOURS, Neighbours, check_neighbours
from .audit import (Audit, audit_epsilon, bin_counts, bin_events, empirical_epsilon, epsilon_lower_bound,
                    event_counts, threshold_events)
from .budget import BudgetExceededError, Charge, PrivacyBudget
from .calibration import analytic_gaussian_sigma, classic_gaussian_sigma, gaussian_delta, laplace_scale
from .composition import advanced_composition, group_privacy, parallel_composition, sequential_composition
from .mechanisms import (analytic_gaussian, exponential, exponential_probabilities, gaussian, laplace,
                         randomized_response, randomized_response_estimate, randomized_response_keep_probability,
                         report_noisy_max)
from .queries import (clip, clipped_mean, clipped_sum, histogram, histogram_sensitivity,
                      mean_sensitivity, private_histogram, private_mean, private_sum, sum_sensitivity)
from .svt import above_threshold
from .discrete import (bernoulli_exp, discrete_gaussian, discrete_gaussian_pmf, discrete_laplace,
                       discrete_laplace_pmf)
from .quantiles import private_quantile, quantile_interval_probabilities
from .renyi import (amplify_by_subsampling, gaussian_rdp, gaussian_zcdp, laplace_rdp, rdp_to_dp,
                    subsampled_gaussian_rdp, zcdp_to_dp)
from .accounting import (RDPAccountant, noise_multiplier_for, prv_epsilon, rdp_curve, rdp_epsilon,
                         rdp_epsilon_with_order)
from .pate import (gnmax_log_q, gnmax_rdp, lnmax_log_q, lnmax_rdp, noisy_argmax, partition, pate_epsilon,
                   pate_laplace_epsilon, teacher_votes, train_student, train_teachers)
from .dpsgd import (DPHistory, StepInfo, check_dp_model, clip_and_sum, clip_factors, dp_sgd_step,
                    per_sample_gradients, per_sample_norms, poisson_batches, train_dp_sgd)

__all__ = [
    "randomized_response", "randomized_response_keep_probability", "randomized_response_estimate", "laplace",
    "gaussian", "analytic_gaussian", "exponential", "exponential_probabilities", "report_noisy_max",
    "above_threshold", "laplace_scale", "classic_gaussian_sigma", "analytic_gaussian_sigma", "gaussian_delta",
    "NEIGHBOURS", "Neighbours", "check_neighbours", "clip", "sum_sensitivity", "mean_sensitivity",
    "histogram_sensitivity", "clipped_sum", "clipped_mean", "histogram", "private_sum", "private_mean",
    "private_histogram",
    "sequential_composition", "parallel_composition", "advanced_composition", "group_privacy",
    "PrivacyBudget", "BudgetExceededError", "Charge",
    "bin_counts", "bin_events", "threshold_events", "event_counts", "empirical_epsilon", "epsilon_lower_bound",
    "audit_epsilon", "Audit",
    "private_quantile", "quantile_interval_probabilities",
    "gaussian_rdp", "laplace_rdp", "gaussian_zcdp", "rdp_to_dp", "zcdp_to_dp", "subsampled_gaussian_rdp",
    "amplify_by_subsampling",
    "bernoulli_exp", "discrete_laplace", "discrete_gaussian", "discrete_laplace_pmf", "discrete_gaussian_pmf",
    "rdp_curve", "rdp_epsilon", "rdp_epsilon_with_order", "noise_multiplier_for", "prv_epsilon", "RDPAccountant",
    "partition", "train_teachers", "teacher_votes", "noisy_argmax", "gnmax_log_q", "gnmax_rdp", "lnmax_log_q",
    "lnmax_rdp", "pate_epsilon", "pate_laplace_epsilon", "train_student",
    "per_sample_gradients", "per_sample_norms", "clip_factors", "clip_and_sum", "dp_sgd_step", "poisson_batches",
    "train_dp_sgd", "DPHistory", "StepInfo", "check_dp_model",
]
