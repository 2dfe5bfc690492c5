"""Evasion attacks: change a test input, within a budget, so that a fixed model gets it wrong.

Every attack returns ``x_adv`` with the shape, dtype and device of ``x``, inside the input range and the
eps-ball. White-box attacks take the model; black-box attacks take only a query oracle.

White-box attacks (chapter *Evasion attacks I*):

- :func:`fgsm`: one signed-gradient step, Linf (Goodfellow et al. 2015);
- :func:`pgd`: projected gradient descent, Linf or L2, untargeted or targeted (Madry et al. 2018);
- :func:`cw_l2`: Carlini–Wagner's minimum-L2 optimisation attack (Carlini & Wagner 2017);
- :func:`deepfool`: steps onto the nearest linearised boundary, L2 (Moosavi-Dezfooli et al. 2016);
- :func:`apgd`: Auto-PGD, step-size-free PGD with momentum and restarts, CE or DLR loss (Croce & Hein 2020);
- :func:`dlr_loss`: the difference-of-logits-ratio loss, invariant to shifting and rescaling the logits;
- :func:`project_linf`, :func:`project_l2`: the projections PGD uses.

Black-box attacks (chapter *Evasion attacks II*), all through an :class:`Oracle` that counts queries:

- :class:`Oracle`: the victim behind an API returning scores, rounded scores or only the top-1 label;
- :func:`transfer_attack`: PGD on a surrogate, one query to the victim (Papernot et al. 2017);
- :func:`simba`: coordinate-wise random search on the scores (Guo et al. 2019);
- :func:`square_attack`: random square updates on the Linf ball's corners (Andriushchenko et al. 2020);
- :func:`hop_skip_jump`: label-only, along the decision boundary (Chen, Jordan & Wainwright 2020).
"""
from .apgd import apgd, dlr_loss
from .gradient import fgsm, input_gradient, pgd, project_l2, project_linf
from .optimization import cw_l2, deepfool

__all__ = ["fgsm", "pgd", "apgd", "dlr_loss", "cw_l2", "deepfool", "project_linf", "project_l2", "input_gradient"]
from .decision_based import hop_skip_jump
from .oracle import Oracle, QueryBudgetExceeded
from .score_based import simba, square_attack
from .transfer import transfer_attack

__all__ += ["Oracle", "QueryBudgetExceeded", "transfer_attack", "simba", "square_attack", "hop_skip_jump"]
