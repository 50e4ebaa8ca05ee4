"""The compare stage's markdown tables (stages/compare.py computes the figures; the charts
are drawn by ``charts``).

Sections, in the order a reader deciding what to deploy needs them: fine-tuned vs base,
hybrid (BM25 fused with each model) against BM25, the quantized indexes, then the corpus,
the protocol and every metric per dimension. The charts are drawn by
embedtune.reporting.charts.
"""

from __future__ import annotations

from tabulate import tabulate

from embedtune.metrics import HEADLINE, METRIC_NAMES, PRECISIONS, key
from embedtune.reporting.stats import ALPHA, RESAMPLES, mean_cell, signed, significance_cells

HEADERS = ["dim", "BM25", "base", "fine-tuned", "change", "change %", "95% CI", "p", "significant"]
SYSTEMS = {  # per-dimension systems of the hybrid table, report label by compare's name
    "bm25": "BM25",
    "base": "base",
    "finetuned": "fine-tuned",
    "base_hybrid": "base hybrid",
    "finetuned_hybrid": "fine-tuned hybrid",
}
RIVALS = {"bm25": "BM25", "base_hybrid": "base hybrid"}  # what fine-tuned hybrid is tested against
PRECISION_LABELS = dict(zip(PRECISIONS, ("float32", "int8", "binary (rescored)"), strict=True))


def _table(rows: list[list], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def corpus_lines(summary: dict, base: dict, tuned: dict, dims: list[int]) -> list[str]:
    """What was searched and, when the knowledge base holds passages without questions, the
    figures against the labelled passages alone beside the full corpus: the gap is how much
    the distractors a production index holds cost each model."""
    n, unlabelled = summary["corpus"], summary["unlabelled"]
    if not unlabelled:
        return [
            f"Corpus searched: {n:,} passages, all of them labelled (no knowledge base given: "
            "set `fetch.corpus` to search every passage a deployment would).",
            "",
        ]
    lines = [
        f"Corpus searched: {n:,} passages, {unlabelled:,} of them without questions "
        f"({summary['labelled']:,} labelled); ndcg@10 against the labelled passages only and "
        "against the whole knowledge base:",
        "",
    ]
    rows = []
    for d in dims:
        row = [d]
        dense = key(d, HEADLINE)
        for source, name in ((base, f"bm25_{HEADLINE}"), (base, dense), (tuned, dense)):
            labelled, full = source.get(f"labelled_{name}"), source.get(name)
            row += ["n/a" if labelled is None else f"{labelled:.4f}", f"{full:.4f}"]
        rows.append(row)
    headers = ["dim", "BM25 labelled", "BM25 all", "base labelled", "base all"]
    headers += ["fine-tuned labelled", "fine-tuned all"]
    return lines + [_table(rows, headers), ""]


def hybrid_lines(systems: dict, tests: dict, dims: list[int], rrf_k: int, chart: str) -> list[str]:
    """Every system's ndcg@10 with its CI, then the paired tests of fine-tuned hybrid
    against BM25 and against base hybrid. ``systems[d][name]`` is a ``mean_ci`` result and
    ``tests[d][rival]`` a ``paired_test`` of rival vs fine-tuned hybrid."""
    rows = [[d, *(mean_cell(systems[d][s]) for s in SYSTEMS)] for d in dims]
    test_rows = [
        [d, label, signed(tests[d][rival]["mean_diff"]), *significance_cells(tests[d][rival])]
        for d in dims
        for rival, label in RIVALS.items()
    ]
    return [
        "## Hybrid: BM25 fused with the dense model",
        "",
        f"Reciprocal rank fusion of the BM25 and the dense ranking (score 1/({rrf_k} + rank) "
        "summed over both, `common.rrf_k`), ndcg@10 with its 95% bootstrap CI over the test "
        "questions:",
        "",
        _table(rows, ["dim", *SYSTEMS.values()]),
        "",
        "Fine-tuned hybrid against each rival, paired per query (change = fine-tuned hybrid "
        "minus the rival):",
        "",
        _table(test_rows, ["dim", "vs", "change", "95% CI", "p", "significant"]),
        "",
        f"![ndcg@10 by dimension]({chart})",
        "",
    ]


def quantization_lines(rows: list[dict], passages: int, chart: str) -> list[str]:
    """The quantized-index table: per dimension and precision, storage and ndcg@10 of both
    models. ``rows`` hold dim, precision, bytes, index_bytes, base, finetuned, and the
    fine-tuned change against its float32 index (``finetuned_change``)."""
    body = [
        [
            r["dim"],
            PRECISION_LABELS[r["precision"]],
            f"{r['bytes']:,}",
            f"{r['index_bytes'] / 1024:,.1f}",
            f"{r['base']:.4f}",
            f"{r['finetuned']:.4f}",
            signed(r["finetuned_change"]),
        ]
        for r in rows
    ]
    headers = ["dim", "precision", "bytes/vector", "index KiB", "base", "fine-tuned"]
    headers += ["fine-tuned vs float32"]
    return [
        "## Quantized retrieval",
        "",
        f"ndcg@10 from a float32, int8 and binary index of the {passages:,} passages (exact "
        "search; int8 calibrated on the corpus embeddings; binary: Hamming search for 4x the "
        "results, rescored with the float query, as sentence-transformers describes), and "
        "what each index stores (int8 adds each dimension's float32 minimum and maximum):",
        "",
        _table(body, headers),
        "",
        f"![ndcg@10 against bytes per vector]({chart})",
        "",
    ]


EXPORT_LABELS = {
    "onnx": "ONNX float32",
    "onnx_int8": "ONNX int8 (dynamic)",
    "openvino": "OpenVINO float32",
}


def export_lines(scores: dict, dims: list[int]) -> list[str]:
    """The export table from the export stage's metrics: ndcg@10 of the PyTorch model and of
    each export at every dimension (change in brackets), and the largest embedding
    difference from PyTorch on the test queries and passages."""
    suffix = "_query_max_abs_diff"
    found = {k.removesuffix(suffix) for k in scores if k.endswith(suffix)}
    # Known formats in the stage's order (the JSON's keys are sorted), then any others.
    formats = [f for f in EXPORT_LABELS if f in found] + sorted(found - set(EXPORT_LABELS))
    rows = [["PyTorch", *(f"{scores[f'pytorch_{key(d, HEADLINE)}']:.4f}" for d in dims), "", ""]]
    for fmt in formats:
        cells = [
            f"{scores[f'{fmt}_{key(d, HEADLINE)}']:.4f} "
            f"({signed(scores[f'{fmt}_{key(d, HEADLINE)}_change'])})"
            for d in dims
        ]
        diffs = [f"{scores[f'{fmt}{suffix}']:.1e}", f"{scores[f'{fmt}_document_max_abs_diff']:.1e}"]
        rows.append([EXPORT_LABELS.get(fmt, fmt), *cells, *diffs])
    headers = ["model", *(f"{d}" for d in dims), "max diff queries", "max diff passages"]
    return [
        "## Exported models",
        "",
        "ndcg@10 of the fine-tuned model exported by the `export` stage (`models/export/`), "
        "scored on the same test questions by the same evaluation code, change against "
        "PyTorch in brackets; the last columns give the largest absolute difference of an "
        "embedding value from PyTorch's. Load one with "
        '`embedtune.export.load_encoder("models/export", "onnx_int8")`; '
        "`make bench-export` measures their speed.",
        "",
        _table(rows, headers),
        "",
    ]


def render_report(
    table: dict,
    tests: dict[int, dict],
    bm25: float | None,
    dims: list[int],
    chart: str,
    protocol: str,
    corpus: list[str] = (),
    sections: list[str] = (),
) -> str:
    """Markdown for the PR comment: the headline table with significance, the ``sections``
    (hybrid, quantization), the corpus and protocol, then every metric per dimension. The
    chart is linked by the hybrid section when there is one."""
    head = []
    for d in dims:
        r, s = table[key(d, HEADLINE)], tests[d]
        head.append(
            [
                d,
                "n/a" if bm25 is None else f"{bm25:.4f}",
                f"{r['base']:.4f}",
                f"{r['finetuned']:.4f}",
                signed(r["change"]),
                pct(r["change_pct"]),
                *significance_cells(s),
            ]
        )
    figure = [] if sections else [f"![ndcg@10 by dimension]({chart})", ""]
    lines = [
        "## Fine-tuned vs base model",
        "",
        "ndcg@10 on the held-out test questions, per embedding dimension "
        "(BM25: the lexical baseline on the same corpus and queries):",
        "",
        _table(head, HEADERS),
        "",
        "CI and p compare fine-tuned with base per query: paired bootstrap CI and paired "
        f"sign-flip permutation test ({RESAMPLES:,} resamples, seeded); significant when "
        f"p < {ALPHA} and the CI excludes 0.",
        "",
        *sections,
        *corpus,
        protocol,
        "",
        *figure,
    ]
    for d in dims:
        rows = []
        for m in METRIC_NAMES:
            r = table[key(d, m)]
            rows.append(
                [m, f"{r['base']:.4f}", f"{r['finetuned']:.4f}", signed(r["change"])]
                + [pct(r["change_pct"])]
            )
        body = _table(rows, ["metric", "base", "fine-tuned", "change", "change %"])
        lines += [f"<details><summary>All metrics at {d} dimensions</summary>", "", body, ""]
        lines += ["</details>", ""]
    return "\n".join(lines)
