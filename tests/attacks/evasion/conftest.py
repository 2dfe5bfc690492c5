"""Models the evasion-attack tests share: the digits models of tests/trained_models.py."""
from trained_models import cnn, digits, test_batch, weak_logreg  # noqa: F401
