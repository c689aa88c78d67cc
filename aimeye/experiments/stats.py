"""Statistics for the experiments, in one place.

* :func:`box_stats`: the box of the paper's Figs 4 and 6 (whiskers at the 2nd
  and 98th percentiles), with the median marked *censored* when failed attacks
  (stopped at the step cap) decide it.
* :func:`censored_median`: a median over attacks of which some failed. A failed
  attack's true value (steps or distortion needed) is at least what was recorded
  at the cap, so the recorded median is a lower bound unless it equals the median
  with every failure set to +∞.
* :func:`wilson_ci`: the Wilson score interval of a proportion (success rate,
  robust accuracy).
* :func:`bootstrap_ci`: a percentile bootstrap interval of any statistic of
  paired samples (e.g. a ratio of medians on the same images).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def censored_median(values, success=None) -> tuple[float | None, bool]:
    """(median, exact?). A failed attack (``success`` False) needs more than it recorded: it counts
    as +∞. When fewer than half failed, the median over those values is finite and exact; otherwise
    the failures decide it and the median of the recorded values is returned as a lower bound
    (``exact`` False: print it as "≥ value")."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return None, True
    med = float(np.median(v))
    if success is None:
        return med, True
    ok = np.asarray(success, dtype=bool)
    worst = np.where(ok, v, np.inf)  # a failure needs more than was recorded
    med_worst = float(np.median(worst))
    return (med_worst, True) if np.isfinite(med_worst) else (med, False)


def box_stats(values, success=None) -> dict:
    """Box statistics: n, p2, q1, median, q3, p98, mean, and ``median_exact`` (False:
    the median is a lower bound because failures at the cap decide it)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0, **dict.fromkeys(("p2", "q1", "median", "q3", "p98", "mean")), "median_exact": True}
    p2, q1, _, q3, p98 = np.percentile(v, [2, 25, 50, 75, 98])
    med, exact = censored_median(v, success)
    return {"n": len(v), "p2": float(p2), "q1": float(q1), "median": med, "q3": float(q3), "p98": float(p98),
            "mean": float(v.mean()), "median_exact": exact}


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for k successes in n trials (None when n = 0)."""
    if n <= 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (0.0 if k == 0 else max(0.0, c - h)), (1.0 if k == n else min(1.0, c + h))


def bootstrap_ci(stat: Callable[..., float], *samples: Sequence, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``stat(*samples)``; the samples are paired
    (resampled with the same indices). None when there are no samples."""
    arrs = [np.asarray(s, dtype=np.float64) for s in samples]
    n = len(arrs[0])
    if n == 0 or any(len(a) != n for a in arrs):
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    vals = np.array([stat(*(a[i] for a in arrs)) for i in idx], dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return None
    lo, hi = np.percentile(vals, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def median_ratio(a, b) -> float:
    """median(a) / median(b) (nan when the denominator is 0)."""
    mb = float(np.median(b))
    return float(np.median(a)) / mb if mb else float("nan")
