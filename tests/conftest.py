import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MLSEC_PROGRESS", "0")
