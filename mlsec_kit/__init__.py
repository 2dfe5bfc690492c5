"""mlsec_kit: the companion package of *Security and Privacy in Machine Learning*.

A notebook needs three globals, all here::

    import mlsec_kit as mk
    mk.seed_everything(0)
    dev = mk.device()      # cuda when present, else cpu
    mk.profile()           # 'small' (default) or 'full' (MLSEC_PROFILE=full)
"""
from .config import by_profile, device, profile, seed_everything
from ._release import VERSION as __version__
from .notebook import glue

__all__ = ["device", "seed_everything", "profile", "by_profile", "glue", "__version__"]
