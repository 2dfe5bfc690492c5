"""Privacy attacks that extract information from a trained model: membership and attribute inference, model
inversion, model extraction and gradient leakage (chapters 8 and 9)."""
