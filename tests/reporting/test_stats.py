"""stats: the paired significance test and the report cells that show it."""

from __future__ import annotations

import numpy as np
import pytest

from embedtune.reporting import stats
from embedtune.reporting.stats import paired_test, signed, significance_cells


def _reference_paired_test(base, tuned, seed: int) -> dict:
    """The hand-written test that scipy's replaced (percentile bootstrap CI, sign-flip p
    with |mean| as statistic), kept here so the switch is checked against what the
    project reported before, not only against scipy itself."""
    diff = np.asarray(tuned, dtype=float) - np.asarray(base, dtype=float)
    n, rng = len(diff), np.random.default_rng(seed)
    boot = diff[rng.integers(0, n, size=(stats.RESAMPLES, n))].mean(axis=1)
    low, high = np.quantile(boot, [stats.ALPHA / 2, 1 - stats.ALPHA / 2])
    signs = rng.choice([-1.0, 1.0], size=(stats.RESAMPLES, n))
    extreme = np.sum(np.abs((signs * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12)
    p_value = (1 + extreme) / (stats.RESAMPLES + 1)
    return {
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "significant": bool(p_value < stats.ALPHA and (low > 0 or high < 0)),
    }


def _ndcg(rank: np.ndarray) -> np.ndarray:
    return np.where(rank > 10, 0.0, 1 / np.log2(rank + 1))


def _synthetic_sets():
    """(name, base, tuned): a weak effect, no effect, ndcg-like discrete scores, and few
    enough queries (10) that scipy enumerates every sign flip instead of sampling."""
    rng = np.random.default_rng(11)
    base = rng.uniform(0, 1, 150)
    yield "weak", base, np.clip(base + rng.normal(0.03, 0.15, 150), 0, 1)
    rng = np.random.default_rng(12)
    base = rng.uniform(0, 1, 120)
    yield "null", base, np.clip(base + rng.normal(0, 0.2, 120), 0, 1)
    rng = np.random.default_rng(13)
    rank = rng.integers(1, 15, 200)
    yield "ranks", _ndcg(rank), _ndcg(np.maximum(1, rank - rng.integers(-2, 4, 200)))
    rng = np.random.default_rng(14)
    base = rng.uniform(0, 1, 10)
    yield "exact", base, base + rng.normal(0.1, 0.15, 10)


def test_a_planted_difference_is_significant():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    tuned = np.clip(base + 0.08 + rng.normal(0, 0.05, 200), 0, 1)
    result = paired_test(base.tolist(), tuned.tolist(), seed=1)
    assert result["significant"] and result["p_value"] < 0.001 and result["ci_low"] > 0


def test_identical_runs_are_not_significant():
    scores = np.random.default_rng(0).uniform(0, 1, 200).tolist()
    result = paired_test(scores, scores, seed=1)
    assert not result["significant"] and result["p_value"] == 1.0
    assert result["ci_low"] <= 0 <= result["ci_high"]


def test_pure_noise_is_not_significant():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 100)
    noisy = base + rng.normal(0, 0.1, 100)
    assert not paired_test(base.tolist(), noisy.tolist(), seed=1)["significant"]


def test_no_scores_is_an_error():
    with pytest.raises(ValueError, match="no paired scores"):
        paired_test([], [], seed=0)


def test_the_seed_fixes_the_result():
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 1, 300)
    tuned = base + rng.normal(0.01, 0.2, 300)
    first = paired_test(base.tolist(), tuned.tolist(), seed=4)
    assert paired_test(base.tolist(), tuned.tolist(), seed=4) == first
    # ...and is really used: another seed draws other resamples.
    other = paired_test(base.tolist(), tuned.tolist(), seed=5)
    assert other["p_value"] != first["p_value"] and other["ci_low"] != first["ci_low"]


def test_batching_does_not_change_the_result(monkeypatch):
    """Resamples are drawn in batches to bound memory on large test sets; the batch size
    must not change the result."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 500)
    tuned = base + rng.normal(0.01, 0.2, 500)
    whole = paired_test(base.tolist(), tuned.tolist(), seed=7)
    monkeypatch.setattr(stats, "CELLS", 500 * 37)  # batches of 37 resamples, last one partial
    assert paired_test(base.tolist(), tuned.tolist(), seed=7) == whole


@pytest.mark.parametrize("name, base, tuned", list(_synthetic_sets()))
def test_agrees_with_the_hand_written_test(name, base, tuned):
    """Both are Monte Carlo estimates of the same quantities, drawn here from different
    seeds. With 10,000 resamples a CI bound's sampling error is ~0.03 standard errors of
    the mean difference, and a p-value's at most ~0.01 (scipy doubles the smaller one-sided
    p where the reference counts |mean|), so the bounds are allowed 0.15 SE and p 0.03."""
    new = paired_test(base.tolist(), tuned.tolist(), seed=0)
    ref = _reference_paired_test(base, tuned, seed=100)
    se = np.std(tuned - base, ddof=1) / np.sqrt(len(base))
    assert new["mean_diff"] == pytest.approx(np.mean(tuned - base))
    assert new["ci_low"] == pytest.approx(ref["ci_low"], abs=0.15 * se)
    assert new["ci_high"] == pytest.approx(ref["ci_high"], abs=0.15 * se)
    assert new["p_value"] == pytest.approx(ref["p_value"], abs=0.03)
    assert new["significant"] == ref["significant"]


def test_significance_cells():
    result = {"ci_low": 0.0123, "ci_high": 0.04567, "p_value": 0.00019, "significant": True}
    assert significance_cells(result) == ["[+0.0123, +0.0457]", "0.0002", "yes"]
    result = {"ci_low": -0.01, "ci_high": 0.02, "p_value": 0.3, "significant": False}
    assert significance_cells(result) == [
        "[-0.0100, +0.0200]",
        "0.3000",
        "**no** (could be noise)",
    ]
    assert signed(0.0) == "+0.0000" and signed(-0.12345) == "-0.1235"


def test_mean_ci_brackets_the_mean_like_the_normal_interval():
    """On 400 uniform scores the percentile bootstrap CI is close to mean +- 1.96 SE, and a
    constant has a zero-width interval."""
    x = np.random.default_rng(8).uniform(0, 1, 400)
    r = stats.mean_ci(x.tolist(), seed=0)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert r["mean"] == pytest.approx(x.mean())
    assert r["ci_low"] == pytest.approx(x.mean() - 1.96 * se, abs=0.1 * se)
    assert r["ci_high"] == pytest.approx(x.mean() + 1.96 * se, abs=0.1 * se)
    assert stats.mean_ci([0.5] * 20, seed=0) == {"mean": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert stats.mean_cell({"mean": 0.73141, "ci_low": 0.6851, "ci_high": 0.7749}) == (
        "0.7314 [0.69, 0.77]"
    )
    with pytest.raises(ValueError, match="no scores"):
        stats.mean_ci([], seed=0)
