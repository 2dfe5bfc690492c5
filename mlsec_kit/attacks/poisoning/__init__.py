"""Poisoning attacks: change the training data so that the learned model fails (chapters *Poisoning* and
*Backdoors*). Every attack returns ``(x_poisoned, y_poisoned, poisoned_indices)`` and leaves its inputs unchanged.

The public names are re-exported here once their modules exist.
"""
