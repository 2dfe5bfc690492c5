"""Defences: against evasion (robust evaluation, adversarial training, gradient masking and the adaptive
attacks that break it, randomized smoothing), later against poisoning and backdoors.

The public names are re-exported here once their modules exist (chapter *Defending against evasion*).
"""
