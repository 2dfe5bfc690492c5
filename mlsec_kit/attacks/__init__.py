"""Attacks on machine learning, by family: ``evasion`` (inference time), ``poisoning`` (training time),
``inference`` (privacy). One verb per family: an evasion attack returns ``x_adv``."""
