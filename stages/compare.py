"""compare: base vs fine-tuned, their hybrids and quantized indexes, per dimension, as JSON,
a markdown report and two charts.

The report is written to read well as a pull-request comment. Whether a difference is more
than noise is a paired bootstrap confidence interval and a paired sign-flip permutation
p-value over the per-query scores (seeded): fine-tuned vs base at every dimension, and
fine-tuned hybrid vs BM25 and vs base hybrid. Rendering lives in embedtune/reporting/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedtune import cli, config, io
from embedtune.errors import StageError
from embedtune.metrics import HEADLINE, METRIC_NAMES, PRECISIONS, key
from embedtune.reporting import charts, tables
from embedtune.reporting.stats import mean_ci, paired_test


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


def protocol_line(conf: config.Params) -> str:
    """One line naming the protocol choices that produced the figures."""
    common, split = conf.common, conf.split
    prompts = "none"
    if common.query_prompt or common.document_prompt:
        prompts = f"{common.query_prompt!r} / {common.document_prompt!r}"
    selection = "dev split" if split.dev_size > 0 else "TEST split (optimistic, as the reference)"
    return (
        f"Protocol: split `{split.strategy}` (seed {common.seed}), corpus "
        f"`{conf.build_ir_eval.corpus}`, pair order `{conf.train.pair_order}`, prompts {prompts}, "
        f"checkpoint chosen on the {selection}."
    )


def per_query(scores: dict, name: str, source: str, qids: list[str]) -> list[float]:
    """One system's per-query ndcg@10 in ``qids`` order, or an error naming what is missing."""
    found = scores.get(name)
    if found is None or set(found) != set(qids):
        why = "missing" if found is None else "scored on other queries"
        raise StageError(f"{source}: per-query scores {name!r} {why}: rerun baseline/evaluate")
    return [found[q] for q in qids]


def per_query_ids(scores: dict, source: str) -> list[str]:
    """The test queries, as the baseline's BM25 scores list them."""
    if "bm25" not in scores:
        raise StageError(f"{source}: no per-query 'bm25' scores: run baseline with --bm25")
    return list(scores["bm25"])


def hybrid_figures(bq: dict, tq: dict, dims: list[int], seed: int, paths: tuple[str, str]):
    """Per dimension: each system's mean ndcg@10 with its CI, and the paired tests of
    fine-tuned hybrid vs BM25 and vs base hybrid."""
    qids = sorted(per_query_ids(bq, paths[0]))
    bm25 = mean_ci(per_query(bq, "bm25", paths[0], qids), seed)
    systems, tests = {}, {}
    for d in dims:
        runs = {
            "bm25": per_query(bq, "bm25", paths[0], qids),
            "base": per_query(bq, f"dim_{d}", paths[0], qids),
            "finetuned": per_query(tq, f"dim_{d}", paths[1], qids),
            "base_hybrid": per_query(bq, f"hybrid_dim_{d}", paths[0], qids),
            "finetuned_hybrid": per_query(tq, f"hybrid_dim_{d}", paths[1], qids),
        }
        systems[d] = {n: bm25 if n == "bm25" else mean_ci(v, seed) for n, v in runs.items()}
        tests[d] = {
            r: paired_test(runs[r], runs["finetuned_hybrid"], seed) for r in ("bm25", "base_hybrid")
        }
    return systems, tests


def metric(scores: dict, name: str, source: str):
    """A metric from a stage's metrics JSON, or an error naming the file and the key."""
    if name not in scores:
        raise StageError(f"{source}: metric {name!r} missing: rerun baseline/evaluate")
    return scores[name]


def quantization_rows(base: dict, tuned: dict, dims: list[int], paths: tuple[str, str]):
    """Per dimension and precision: storage and ndcg@10 of both models, and the fine-tuned
    model's change against its own float32 index."""
    rows = []
    for d in dims:
        for precision in PRECISIONS:
            prefix = "" if precision == "float32" else f"{precision}_"
            ndcg = key(d, HEADLINE, prefix)
            b, t = metric(base, ndcg, paths[0]), metric(tuned, ndcg, paths[1])
            rows.append(
                {
                    "dim": d,
                    "precision": precision,
                    "bytes": metric(tuned, key(d, "bytes_per_vector", f"{precision}_"), paths[1]),
                    "index_bytes": metric(tuned, key(d, "index_bytes", f"{precision}_"), paths[1]),
                    "base": b,
                    "finetuned": t,
                    "finetuned_change": round(t - tuned[key(d, HEADLINE)], 6),
                    "base_change": round(b - base[key(d, HEADLINE)], 6),
                }
            )
    return rows


def _r(v):
    return round(v, 6) if isinstance(v, float) else v


def flat_results(table, tests, systems, hybrid_tests, quant) -> dict:
    """compare.json: flat, stable keys (see the README for their meaning)."""
    flat = {f"{k}_{f}": v for k, row in table.items() for f, v in row.items() if "change" in f}
    for d, s in tests.items():
        flat.update({f"{key(d, HEADLINE)}_{k}": _r(v) for k, v in s.items()})
    for d, by_system in systems.items():
        for name, r in by_system.items():
            prefix = f"{name}_" if name == "bm25" else f"{name}_dim_{d}_"
            flat.update({f"{prefix}{HEADLINE}_{k}": _r(v) for k, v in r.items()})
        for rival, t in hybrid_tests[d].items():
            flat.update({f"hybrid_vs_{rival}_dim_{d}_{HEADLINE}_{k}": _r(v) for k, v in t.items()})
    for r in quant:
        if r["precision"] != "float32":
            for model in ("base", "finetuned"):
                flat[f"{model}_{r['precision']}_dim_{r['dim']}_{HEADLINE}_change"] = r[
                    f"{model}_change"
                ]
    return flat


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--baseline-metrics", required=True, help="the baseline stage's metrics")
    ap.add_argument("--evaluate-metrics", required=True, help="the evaluate stage's metrics")
    ap.add_argument("--baseline-per-query", required=True)
    ap.add_argument("--evaluate-per-query", required=True)
    ap.add_argument("--corpus-summary", required=True, help="build_ir_eval's summary.json")
    ap.add_argument("--export-metrics", required=True, help="the export stage's metrics")
    ap.add_argument("--out", required=True, help="compare JSON")
    ap.add_argument("--report", required=True, help="markdown report")
    ap.add_argument("--chart", required=True, help="PNG chart: ndcg@10 by dimension")
    ap.add_argument("--quant-chart", required=True, help="PNG chart: ndcg@10 by bytes/vector")
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    dims, seed = conf.common.dims, conf.common.seed
    base = io.read_json(args.baseline_metrics)
    tuned = io.read_json(args.evaluate_metrics)
    bm25 = metric(base, f"bm25_{HEADLINE}", args.baseline_metrics)
    for d in dims:
        for m in METRIC_NAMES:
            metric(base, key(d, m), args.baseline_metrics)
            metric(tuned, key(d, m), args.evaluate_metrics)
    table = compare(base, tuned, dims)
    summary = io.read_json(args.corpus_summary)
    bq, tq = io.read_json(args.baseline_per_query), io.read_json(args.evaluate_per_query)
    pq_paths = (args.baseline_per_query, args.evaluate_per_query)
    qids = sorted(per_query_ids(bq, pq_paths[0]))
    tests = {
        d: paired_test(
            per_query(bq, f"dim_{d}", pq_paths[0], qids),
            per_query(tq, f"dim_{d}", pq_paths[1], qids),
            seed,
        )
        for d in dims
    }
    systems, hybrid_tests = hybrid_figures(bq, tq, dims, seed, pq_paths)
    quant = quantization_rows(base, tuned, dims, (args.baseline_metrics, args.evaluate_metrics))
    flat = flat_results(table, tests, systems, hybrid_tests, quant)
    flat.update(corpus_passages=summary["corpus"], corpus_unlabelled=summary["unlabelled"])
    chart, quant_chart = Path(args.chart), Path(args.quant_chart)
    rrf_k = conf.common.rrf_k
    sections = tables.hybrid_lines(systems, hybrid_tests, dims, rrf_k, chart.name)
    sections += tables.quantization_lines(quant, summary["corpus"], quant_chart.name)
    sections += tables.export_lines(io.read_json(args.export_metrics), dims)
    corpus = tables.corpus_lines(summary, base, tuned, dims)
    report = tables.render_report(
        table, tests, bm25, dims, chart.name, protocol_line(conf), corpus, sections
    )
    hybrid = {m: [systems[d][f"{m}_hybrid"]["mean"] for d in dims] for m in ("base", "finetuned")}
    with io.atomic_path(chart) as tmp:
        charts.draw_chart(table, bm25, dims, tmp, hybrid)
    with io.atomic_path(quant_chart) as tmp:
        charts.draw_quantization_chart(quant, bm25, tmp)
    with io.atomic_path(args.report) as tmp:
        tmp.write_text(report, encoding="utf-8")
    io.write_json(args.out, flat)
    print(report.split("\n\n<details>")[0])


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
