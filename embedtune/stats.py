"""Paired significance test for per-query scores of two models on the same queries.

scipy.stats has both a bootstrap and a permutation test, but neither draws its resamples in
bounded blocks: on a real test set of tens of thousands of queries a (resamples x queries)
matrix takes gigabytes. This does the same two tests block by block, seeded.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10_000
ALPHA = 0.05
CELLS = 4_000_000  # resampled values held at once (~32 MB of float64)


def paired_test(base: list[float], tuned: list[float], seed: int) -> dict[str, float]:
    """Mean difference (tuned - base), its 95% bootstrap CI and a sign-flip permutation
    p-value; ``significant`` when p < ALPHA and the CI excludes 0."""
    diff = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    n = len(diff)
    if n == 0:
        raise ValueError("paired_test: no paired scores")
    rng = np.random.default_rng(seed)
    block = max(1, CELLS // n)
    boot = np.concatenate(
        [
            diff[rng.integers(0, n, size=(min(block, RESAMPLES - i), n))].mean(axis=1)
            for i in range(0, RESAMPLES, block)
        ]
    )
    low, high = np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2])
    # Under "no difference" each per-query difference is as likely positive as negative.
    observed = abs(diff.mean()) - 1e-12
    extreme = 0
    for i in range(0, RESAMPLES, block):
        signs = rng.choice([-1.0, 1.0], size=(min(block, RESAMPLES - i), n))
        extreme += int(np.sum(np.abs((signs * diff).mean(axis=1)) >= observed))
    p = (1 + extreme) / (RESAMPLES + 1)
    return {
        "mean_diff": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(p),
        "significant": bool(p < ALPHA and (low > 0 or high < 0)),
    }
