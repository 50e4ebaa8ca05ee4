"""The whole DAG, with the real `dvc repro`, over a knowledge base five times the labelled
chunks: every stage searches it, BM25 and mining included, and held-out documents stay out
of training."""

from __future__ import annotations

import re

import pytest

from embedtune import io
from tests.pipeline import make_project, output, run, tiny_params
from tests.tiny import toy_corpus, toy_rows, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kb_project(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("kb")
    rows = toy_rows(40, 3)
    data = write_csv(root / "pairs.csv", rows)
    kb = write_csv(root / "kb.csv", toy_corpus(rows, extra=160))
    p = tiny_params(tiny_model_dir, data)
    p["fetch"]["corpus"].update(source="file", path=str(kb))
    p["split"]["strategy"] = "by_document"
    p["train"]["hard_negatives"].update(enabled=True, relative_margin=0.0)
    project = make_project(root / "project", p)
    return project, output(run(["dvc", "repro"], project))


def test_every_stage_searches_the_knowledge_base(kb_project):
    project, out = kb_project
    counts = io.read_json(project / "data/fetch/source.json")["corpus"]
    assert counts["source"].endswith("kb.csv")
    assert (counts["passages"], counts["labelled"], counts["unlabelled"]) == (200, 40, 160)
    summary = io.read_json(project / "data/build_ir_eval/summary.json")
    assert (summary["corpus"], summary["unlabelled"]) == (200, 160)
    assert len(io.read_jsonl(project / "data/build_ir_eval/corpus.jsonl")) == 200
    compare = io.read_json(project / "metrics/compare.json")
    assert (compare["corpus_passages"], compare["corpus_unlabelled"]) == (200, 160)
    report = (project / "metrics/compare.md").read_text()
    assert "Corpus searched: 200 passages, 160 of them without questions (40 labelled)" in report
    assert "| dim   | BM25 labelled   | BM25 all" in report


def test_labelled_only_and_full_figures_for_every_model(kb_project):
    project, _ = kb_project
    for name in ("baseline", "evaluate"):
        m = io.read_json(project / f"metrics/{name}.json")
        for d in (32, 16, 8):
            full, labelled = m[f"dim_{d}_ndcg@10"], m[f"labelled_dim_{d}_ndcg@10"]
            # More passages can only push the relevant ones down the dense ranking.
            assert full <= labelled + 1e-9, (name, d)
        assert name != "baseline" or {"bm25_ndcg@10", "labelled_bm25_ndcg@10"} <= m.keys()


def test_held_out_documents_never_reach_training_and_mining_uses_the_pool(kb_project):
    project, out = kb_project
    corpus = {p["id"]: p for p in io.read_jsonl(project / "data/fetch/corpus.jsonl")}
    pool = set(io.read_json(project / "data/split/train_pool.json"))
    held = [r for n in ("dev", "test") for r in io.read_jsonl(project / f"data/split/{n}.jsonl")]
    held_docs = {r["document_id"] for r in held}
    assert held_docs and all(corpus[i]["document_id"] not in held_docs for i in pool)
    train_docs = {r["document_id"] for r in io.read_jsonl(project / "data/split/train.jsonl")}
    assert not train_docs & held_docs
    # Unlabelled passages of the training documents are in the pool, and mining used it.
    assert len(pool) > len({r["chunk_id"] for r in held}) and len(pool) < 200
    mined = re.search(r"mined a hard negative for \d+ of \d+ training pairs from (\d+)", out)
    assert mined and int(mined.group(1)) == len(pool), out
    # Encoded once: mining took the baseline's rows for every passage it scored.
    reused = re.search(r"mining reuses the baseline's embeddings of (\d+) of (\d+) passages", out)
    assert reused and reused.group(1) == reused.group(2) and int(reused.group(1)) >= len(pool), out
    assert "(0 encoded now)" in out and "did not pick up" not in out
