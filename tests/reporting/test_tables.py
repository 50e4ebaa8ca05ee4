"""tables: the compare stage's markdown report. Pins the fine-tuned vs base row at a
dimension (BM25, base, fine-tuned, change, change %, the 95% CI, the exact sign-flip p-value
and the significance verdict), that the protocol line and the chart link are in the report,
and that the chart it links is drawn as a PNG.
"""

from __future__ import annotations

from embedtune.reporting import charts, tables
from embedtune.reporting.stats import paired_test
from stages import compare
from tests.tiny import PNG, toy_metrics


def test_report_and_chart(tmp_path):
    dims = [64, 32]
    table = compare.compare(toy_metrics(0.4, dims), toy_metrics(0.5, dims), dims)
    tests = {d: paired_test([0.4] * 5, [0.5] * 5, seed=0) for d in dims}
    report = tables.render_report(table, tests, 0.3, dims, "compare.png", "Protocol: x")
    # Five equal differences: scipy enumerates all 32 sign flips, two as extreme as +0.1.
    assert (
        "| 64    | 0.3000 | 0.4000 | 0.5000       | +0.1000  | +25.0%     | [+0.1000, +0.1000] "
        "| 0.0625 | **no** (could be noise) |"
    ) in report
    assert "Protocol: x" in report
    assert "![ndcg@10 by dimension](compare.png)" in report
    charts.draw_chart(table, 0.3, dims, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
