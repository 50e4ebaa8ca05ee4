"""compare: changes, significance and the report."""

from __future__ import annotations

import numpy as np
import pytest

from embedtune import stats
from embedtune.params import METRIC_NAMES
from embedtune.stats import paired_test
from stages import compare


def _metrics(value: float, dims=(64, 32)) -> dict:
    return {f"dim_{d}_{m}": value for d in dims for m in METRIC_NAMES}


def test_changes_are_absolute_and_relative():
    table = compare.compare(_metrics(0.4), _metrics(0.5), [64, 32])
    row = table["dim_64_ndcg@10"]
    assert row["change"] == pytest.approx(0.1) and row["change_pct"] == pytest.approx(25.0)


def test_significance_flags_a_planted_difference():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    tuned = np.clip(base + 0.08 + rng.normal(0, 0.05, 200), 0, 1)
    result = paired_test(base.tolist(), tuned.tolist(), seed=1)
    assert result["significant"] and result["p_value"] < 0.001 and result["ci_low"] > 0


def test_significance_does_not_flag_identical_runs():
    scores = np.random.default_rng(0).uniform(0, 1, 200).tolist()
    result = paired_test(scores, scores, seed=1)
    assert not result["significant"] and result["p_value"] == 1.0


def test_significance_does_not_flag_pure_noise():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 100)
    noisy = base + rng.normal(0, 0.1, 100)
    assert not paired_test(base.tolist(), noisy.tolist(), seed=1)["significant"]


def test_report_and_chart(tmp_path):
    dims = [64, 32]
    table = compare.compare(_metrics(0.4, dims), _metrics(0.5, dims), dims)
    tests = {d: paired_test([0.4] * 5, [0.5] * 5, seed=0) for d in dims}
    report = compare.render_report(table, tests, 0.3, dims, "compare.png", "Protocol: x")
    assert "| 64    | 0.3000 | 0.4000 | 0.5000       | +0.1000  | +25.0%" in report
    assert "Protocol: x" in report
    assert "![ndcg@10 by dimension](compare.png)" in report
    compare.draw_chart(table, 0.3, dims, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_protocol_line_names_the_choices():
    from embedtune import params

    line = compare.protocol_line(params.load("profiles/reference-gpu.yaml"))
    assert "split `random`" in line and "corpus `rows`" in line
    assert "`positive_anchor`" in line and "TEST split" in line


def test_blocked_resampling_gives_the_same_answer_as_one_block(monkeypatch):
    """Resamples are drawn in blocks to bound memory on large test sets; the block size
    must not change the result."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 500)
    tuned = base + rng.normal(0.01, 0.2, 500)
    whole = paired_test(base.tolist(), tuned.tolist(), seed=7)
    monkeypatch.setattr(stats, "CELLS", 500 * 37)  # blocks of 37 resamples, last one partial
    assert paired_test(base.tolist(), tuned.tolist(), seed=7) == whole
