"""Paired significance test for per-query scores of two models on the same queries, and the
report cells that show its result.

Both resampling tests are scipy's; ``batch=`` keeps the (resamples x queries) matrices to a
bounded size, which on a test set of tens of thousands of queries would otherwise take
gigabytes.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10_000
ALPHA = 0.05
CELLS = 4_000_000  # resampled values held at once (~32 MB of float64)


def paired_test(base: list[float], tuned: list[float], seed: int) -> dict[str, float]:
    """Mean difference (tuned - base), its 95% bootstrap CI and a sign-flip permutation
    p-value; ``significant`` when p < ALPHA and the CI excludes 0."""
    from scipy import stats  # slow to import; compare imports this module at start-up

    diff = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    n = len(diff)
    if n == 0:
        raise ValueError("paired_test: no paired scores")
    rng = np.random.default_rng(seed)
    batch = max(1, CELLS // n)
    # Percentile, not scipy's default BCa: BCa is undefined (NaN, with a warning) when every
    # difference is the same, e.g. two identical runs, and for a mean over ~100+ queries its
    # skew correction is small. Percentile is also what this project reported before.
    ci = stats.bootstrap(
        (diff,),
        np.mean,
        n_resamples=RESAMPLES,
        batch=batch,
        confidence_level=1 - ALPHA,
        method="percentile",
        rng=rng,
    ).confidence_interval
    # One sample with permutation_type="samples" flips the sign of each difference: under
    # "no difference" either model is as likely to score higher on a query. Below 14
    # queries scipy enumerates all 2**n flips instead of sampling them.
    # scipy pairs each difference with its negative, so a resample holds 2n values.
    p_value = stats.permutation_test(
        (diff,),
        np.mean,
        permutation_type="samples",
        n_resamples=RESAMPLES,
        batch=max(1, batch // 2),
        alternative="two-sided",
        rng=rng,
    ).pvalue
    low, high = float(ci.low), float(ci.high)
    return {
        "mean_diff": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "p_value": float(p_value),
        "significant": bool(p_value < ALPHA and (low > 0 or high < 0)),
    }


def mean_ci(scores: list[float], seed: int) -> dict[str, float]:
    """One system's mean score and its 95% percentile bootstrap CI over the queries (the
    same resampling as ``paired_test``, for a report cell such as 0.7314 [0.69, 0.77])."""
    from scipy import stats

    x = np.asarray(scores, dtype=float)
    if len(x) == 0:
        raise ValueError("mean_ci: no scores")
    ci = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=RESAMPLES,
        batch=max(1, CELLS // len(x)),
        confidence_level=1 - ALPHA,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return {"mean": float(x.mean()), "ci_low": float(ci.low), "ci_high": float(ci.high)}


def mean_cell(result: dict) -> str:
    """A ``mean_ci`` result as a report cell: mean and CI, four and two decimals."""
    return f"{result['mean']:.4f} [{result['ci_low']:.2f}, {result['ci_high']:.2f}]"


def signed(x: float) -> str:
    """A difference as the reports show it: always signed, four decimals."""
    return f"{x:+.4f}"


def significance_cells(test: dict) -> list[str]:
    """The 95% CI, p and verdict cells of a ``paired_test`` result, for report tables."""
    return [
        f"[{signed(test['ci_low'])}, {signed(test['ci_high'])}]",
        f"{test['p_value']:.4f}",
        "yes" if test["significant"] else "**no** (could be noise)",
    ]
