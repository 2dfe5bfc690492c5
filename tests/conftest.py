import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MLSEC_PROGRESS", "0")
# Notebook kernels and the book build inherit this. On a 2-core machine, torch's default of one thread per
# core turns any concurrent load into a 20x slowdown of small models (measured: chapter 2 in 327 s instead of
# 15 s); tests do not measure speed, so they run single-threaded. The benchmark script does not set it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
