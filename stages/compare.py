"""compare: base vs fine-tuned, per dimension, as JSON, a markdown report and a chart.

The report is written to read well as a pull-request comment. For each dimension it also
says whether the ndcg@10 difference is more than noise: a paired bootstrap confidence
interval and a paired sign-flip permutation p-value over the per-query scores (seeded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from embedtune import io, params
from embedtune.metrics import HEADLINE, METRIC_NAMES, key
from embedtune.stats import ALPHA, RESAMPLES, paired_test, signed, significance_cells


def compare(base: dict[str, float], tuned: dict[str, float], dims: list[int]) -> dict[str, dict]:
    """Per dimension and metric: base, fine-tuned, absolute and relative change."""
    out: dict[str, dict] = {}
    for d in dims:
        for m in METRIC_NAMES:
            b, t = base[key(d, m)], tuned[key(d, m)]
            out[key(d, m)] = {
                "base": b,
                "finetuned": t,
                "change": round(t - b, 6),
                "change_pct": round(100 * (t - b) / b, 2) if b else None,
            }
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


HEADERS = ["dim", "BM25", "base", "fine-tuned", "change", "change %", "95% CI", "p", "significant"]


def protocol_line(p: params.Params) -> str:
    """One line naming the protocol choices that produced the figures."""
    prompts = "none"
    if p.common.query_prompt or p.common.document_prompt:
        prompts = f"{p.common.query_prompt!r} / {p.common.document_prompt!r}"
    selection = "dev split" if p.split.dev_size > 0 else "TEST split (optimistic, as the reference)"
    return (
        f"Protocol: split `{p.split.strategy}` (seed {p.common.seed}), corpus "
        f"`{p.build_ir_eval.corpus}`, training columns `{p.train.pair_order}`, prompts {prompts}, "
        f"checkpoint chosen on the {selection}."
    )


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
    lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return lines


def render_report(
    table: dict,
    tests: dict[int, dict],
    bm25: float | None,
    dims: list[int],
    chart: str,
    protocol: str,
    corpus: list[str] = (),
) -> str:
    """Markdown for the PR comment: headline table with significance, then every metric."""
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
                _pct(r["change_pct"]),
                *significance_cells(s),
            ]
        )
    lines = [
        "## Fine-tuned vs base model",
        "",
        "ndcg@10 on the held-out test questions, per embedding dimension "
        "(BM25: the lexical baseline on the same corpus and queries):",
        "",
        tabulate(head, headers=HEADERS, tablefmt="github", disable_numparse=True),
        "",
        "CI and p compare fine-tuned with base per query: paired bootstrap CI and paired "
        f"sign-flip permutation test ({RESAMPLES:,} resamples, seeded); significant when "
        f"p < {ALPHA} and the CI excludes 0.",
        "",
        *corpus,
        protocol,
        "",
        f"![ndcg@10 by dimension]({chart})",
        "",
    ]
    for d in dims:
        rows = []
        for m in METRIC_NAMES:
            r = table[key(d, m)]
            rows.append(
                [
                    m,
                    f"{r['base']:.4f}",
                    f"{r['finetuned']:.4f}",
                    signed(r["change"]),
                    _pct(r["change_pct"]),
                ]
            )
        body = tabulate(
            rows,
            headers=["metric", "base", "fine-tuned", "change", "change %"],
            tablefmt="github",
            disable_numparse=True,
        )
        lines += [
            f"<details><summary>All metrics at {d} dimensions</summary>",
            "",
            body,
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def draw_chart(table: dict, bm25: float | None, dims: list[int], path: Path) -> None:
    """ndcg@10 against dimension, base vs fine-tuned (BM25 as a flat line), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI runners or servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for field, label, style in (("base", "base", "o--"), ("finetuned", "fine-tuned", "o-")):
        ax.plot(dims, [table[key(d, HEADLINE)][field] for d in dims], style, label=label)
    if bm25 is not None:
        ax.axhline(bm25, color="grey", linestyle=":", label="BM25")
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("ndcg@10")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    # Fixed metadata keeps the PNG bytes identical between identical runs.
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--baseline-metrics", required=True, help="the baseline stage's metrics")
    ap.add_argument("--evaluate-metrics", required=True, help="the evaluate stage's metrics")
    ap.add_argument("--baseline-per-query", required=True)
    ap.add_argument("--evaluate-per-query", required=True)
    ap.add_argument("--corpus-summary", required=True, help="build_ir_eval's summary.json")
    ap.add_argument("--out", required=True, help="compare JSON")
    ap.add_argument("--report", required=True, help="markdown report")
    ap.add_argument("--chart", required=True, help="PNG chart")
    args = ap.parse_args(argv)
    p = params.load(args.params)
    dims = p.common.dims
    base = io.read_json(args.baseline_metrics)
    bm25 = base.get(f"bm25_{HEADLINE}")
    tuned = io.read_json(args.evaluate_metrics)
    table = compare(base, tuned, dims)
    summary = io.read_json(args.corpus_summary)
    bq, tq = io.read_json(args.baseline_per_query), io.read_json(args.evaluate_per_query)
    tests = {}
    for d in dims:
        qids = sorted(bq[f"dim_{d}"])
        tests[d] = paired_test(
            [bq[f"dim_{d}"][q] for q in qids], [tq[f"dim_{d}"][q] for q in qids], p.common.seed
        )
    flat = {
        f"{k}_{field}": v
        for k, row in table.items()
        for field, v in row.items()
        if field in ("change", "change_pct")
    }
    flat.update(
        {
            f"{key(d, HEADLINE)}_{k}": round(v, 6) if isinstance(v, float) else v
            for d, s in tests.items()
            for k, v in s.items()
        }
    )
    flat.update(corpus_passages=summary["corpus"], corpus_unlabelled=summary["unlabelled"])
    chart = Path(args.chart)
    corpus = corpus_lines(summary, base, tuned, dims)
    report = render_report(table, tests, bm25, dims, chart.name, protocol_line(p), corpus)
    with io.atomic_path(chart) as tmp:
        draw_chart(table, bm25, dims, tmp)
    with io.atomic_path(args.report) as tmp:
        tmp.write_text(report, encoding="utf-8")
    io.write_json(args.out, flat)
    print(report.split("\n\n<details>")[0])


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
