"""charts: the quantization chart (ndcg@10 by bytes per vector). Pins that it is written as a
PNG for rows of every dimension and precision, and that drawing it twice from the same rows
writes identical bytes (the PNG metadata is fixed), so DVC sees an unchanged output.
"""

from __future__ import annotations

from embedtune.reporting import charts
from tests.tiny import PNG


def test_quantization_chart_draws_every_point(tmp_path):
    rows = [
        {"dim": d, "precision": precision, "bytes": b, "base": 0.3, "finetuned": 0.4}
        for d in (64, 32)
        for precision, b in (("float32", 4 * d), ("int8", d), ("ubinary", d // 8))
    ]
    charts.draw_quantization_chart(rows, 0.5, tmp_path / "q.png")
    first = (tmp_path / "q.png").read_bytes()
    assert first[:8] == PNG
    charts.draw_quantization_chart(rows, 0.5, tmp_path / "q.png")
    assert (tmp_path / "q.png").read_bytes() == first  # identical runs, identical bytes
