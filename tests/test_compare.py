"""compare: changes, significance and the report."""

from __future__ import annotations

import pytest

from embedtune.metrics import METRIC_NAMES
from embedtune.stats import paired_test
from stages import compare


def _metrics(value: float, dims=(64, 32)) -> dict:
    return {f"dim_{d}_{m}": value for d in dims for m in METRIC_NAMES}


def test_changes_are_absolute_and_relative():
    table = compare.compare(_metrics(0.4), _metrics(0.5), [64, 32])
    row = table["dim_64_ndcg@10"]
    assert row["change"] == pytest.approx(0.1) and row["change_pct"] == pytest.approx(25.0)


def test_report_and_chart(tmp_path):
    dims = [64, 32]
    table = compare.compare(_metrics(0.4, dims), _metrics(0.5, dims), dims)
    tests = {d: paired_test([0.4] * 5, [0.5] * 5, seed=0) for d in dims}
    report = compare.render_report(table, tests, 0.3, dims, "compare.png", "Protocol: x")
    # Five equal differences: scipy enumerates all 32 sign flips, two as extreme as +0.1.
    assert (
        "| 64    | 0.3000 | 0.4000 | 0.5000       | +0.1000  | +25.0%     | [+0.1000, +0.1000] "
        "| 0.0625 | **no** (could be noise) |"
    ) in report
    assert "Protocol: x" in report
    assert "![ndcg@10 by dimension](compare.png)" in report
    compare.draw_chart(table, 0.3, dims, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_protocol_line_names_the_choices():
    from embedtune import params

    line = compare.protocol_line(params.load("profiles/reference-gpu.yaml"))
    assert "split `random`" in line and "corpus `rows`" in line
    assert "`positive_anchor`" in line and "TEST split" in line
