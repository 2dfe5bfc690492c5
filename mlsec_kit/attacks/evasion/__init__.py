"""Evasion attacks: change a test input, within a budget, so that a fixed model gets it wrong.

Every attack returns ``x_adv`` with the shape, dtype and device of ``x``, inside the input range and the
eps-ball. White-box attacks take the model; black-box attacks take only a query oracle.
"""
