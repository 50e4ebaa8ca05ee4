"""The one-pass evaluator must give sentence-transformers' numbers at every dimension."""

from __future__ import annotations

import pytest
import torch

from embedtune.retrieval import search
from tests.tiny import toy_rows


def _ir_data(n_chunks=40, per_chunk=3):
    rows = toy_rows(n_chunks, per_chunk, seed=3)
    corpus = {str(r["global_chunk_id"]): r["text"] for r in rows}
    queries, relevant = {}, {}
    for i, r in enumerate(rows):
        queries[f"q{i}"] = r["question"]
        # Every 7th query has a second relevant chunk, to exercise recall/map with n_rel > 1.
        rel = {str(r["global_chunk_id"])}
        if i % 7 == 0:
            rel.add(str((r["global_chunk_id"] + 1) % n_chunks))
        relevant[f"q{i}"] = rel
    return search.IRData(corpus, queries, relevant)


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_matches_sentence_transformers_at_every_dim(which, tiny_model_dir, minilm_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    path, dims = (
        (tiny_model_dir, [32, 16, 8, 4]) if which == "tiny" else (minilm_dir, [384, 256, 128, 64])
    )
    model = SentenceTransformer(str(path), device="cpu")
    data = _ir_data()
    ours = search.evaluate_model(model, data, dims, batch_size=16)
    for d in dims:
        ref = InformationRetrievalEvaluator(
            data.queries,
            data.corpus,
            data.relevant_docs,
            truncate_dim=d,
            name=f"dim_{d}",
            batch_size=16,
            write_csv=False,
        )(model)
        metrics, per_query = ours[d]
        assert len(metrics) == 15
        for name, value in metrics.items():
            assert value == pytest.approx(ref[f"dim_{d}_cosine_{name}"], abs=1e-6), (d, name)
        assert list(per_query) == [q for q in data.queries if data.relevant_docs.get(q)]
        scores = list(per_query.values())
        assert sum(scores) / len(scores) == pytest.approx(metrics["ndcg@10"], abs=1e-12)


def test_score_hits_by_hand():
    # Query 1: relevant doc at rank 2; query 2: two relevant docs, found at ranks 1 and 3.
    hits = [["a", "b", "c"], ["x", "y", "z"]]
    relevant = [{"b"}, {"x", "z"}]
    m, per_query = search.score_hits(hits, relevant)
    assert m["accuracy@1"] == 0.5 and m["accuracy@3"] == 1.0
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert m["precision@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert m["map@100"] == pytest.approx((0.5 + (1 + 2 / 3) / 2) / 2)
    ideal2 = 1 + 1 / torch.log2(torch.tensor(3.0)).item()
    assert per_query[0] == pytest.approx(1 / torch.log2(torch.tensor(3.0)).item())
    assert per_query[1] == pytest.approx((1 + 0.5) / ideal2)


def test_ties_are_broken_by_corpus_id():
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert search.ranked_hits(q, c, ["z", "a", "m"], 3) == [["a", "z", "m"]]


def test_prompts_reach_the_encoder_like_the_evaluators(tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    data = _ir_data(20, 2)
    plain = search.evaluate_model(model, data, [32], batch_size=8)[32][0]
    ours = search.evaluate_model(model, data, [32], 8, "court ", "camera ")[32][0]
    ref = InformationRetrievalEvaluator(
        data.queries,
        data.corpus,
        data.relevant_docs,
        name="p",
        batch_size=8,
        write_csv=False,
        query_prompt="court ",
        corpus_prompt="camera ",
    )(model)
    assert ours != plain  # the prompts changed what was encoded
    for name, value in ours.items():
        assert value == pytest.approx(ref[f"p_cosine_{name}"], abs=1e-6), name


def test_bm25_finds_lexical_matches_and_uses_the_same_metrics():
    corpus = {
        "a": "the jury returned a verdict for the plaintiff",
        "b": "the patent office rejected the inventor named as an algorithm",
        "c": "biometric privacy consent under the statute",
    }
    queries = {
        "q1": "which verdict did the jury return",
        "q2": "patent inventor rejected",
        "q3": "consent for biometric data",
    }
    relevant = {"q1": {"a"}, "q2": {"b"}, "q3": {"c"}}
    metrics, per_query = search.bm25_results(search.IRData(corpus, queries, relevant))
    assert metrics["accuracy@1"] == 1.0 and per_query == {"q1": 1.0, "q2": 1.0, "q3": 1.0}
    swapped = {"q1": {"b"}, "q2": {"c"}, "q3": {"a"}}
    assert search.bm25_results(search.IRData(corpus, queries, swapped))[0]["accuracy@1"] == 0.0


def test_one_pass_scores_the_full_knowledge_base_and_the_labelled_passages(tiny_model_dir):
    """The labelled-only figures equal a separate evaluation on the labelled corpus, and
    adding passages can only push relevant ones down: no query scores higher on the full
    corpus (dense retrieval; BM25's weights change with the corpus, so it is not held)."""
    from sentence_transformers import SentenceTransformer

    from tests.tiny import toy_corpus

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    labelled = _ir_data(20, 2)
    extra = toy_corpus(toy_rows(20, 2, seed=3), extra=60)[20:]
    corpus = {
        **labelled.corpus,
        **{str(passage["global_chunk_id"]): passage["text"] for passage in extra},
    }
    data = search.IRData(
        corpus, labelled.queries, labelled.relevant_docs, frozenset(labelled.corpus)
    )
    assert data.unlabelled_count() == 60 and data.labelled_only().corpus == labelled.corpus
    full, only = search.evaluate_model_both(model, data, [32, 8], batch_size=16)
    alone = search.evaluate_model(model, labelled, [32, 8], batch_size=16)
    assert full.keys() == only.keys() == {32, 8}
    for d in (32, 8):
        assert only[d][0] == pytest.approx(alone[d][0], abs=1e-9)
        assert full[d][1].keys() == only[d][1].keys()
        assert all(full[d][1][q] <= only[d][1][q] + 1e-12 for q in full[d][1])
    assert full[8][0]["ndcg@10"] < only[8][0]["ndcg@10"]  # the distractors cost something


def test_ranking_blocks_shrink_with_the_corpus(monkeypatch):
    """Bounded score matrices: with a tiny cell budget the queries are scored a few at a
    time, and the ranking is the same as in one block."""
    torch.manual_seed(0)
    q, c = torch.randn(50, 8), torch.randn(300, 8)
    ids = [f"p{i:03d}" for i in range(300)]
    whole = search.ranked_hits(q, c, ids, 10)
    monkeypatch.setattr(search, "SCORE_CELLS", 600)  # two queries per block
    assert search.ranked_hits(q, c, ids, 10) == whole


def test_run_eval_writes_hybrid_and_quantized_figures_at_every_dim(tiny_model_dir, tmp_path):
    """The baseline/evaluate path on the tiny model: dense, labelled, hybrid, BM25 and
    quantized keys for every dimension, and per-query ndcg@10 for dense and hybrid."""

    from embedtune import config, io
    from embedtune.metrics import METRIC_NAMES
    from embedtune.retrieval import evaluation
    from tests.tiny import toy_corpus

    labelled = _ir_data(20, 2)
    extra = toy_corpus(toy_rows(20, 2, seed=3), extra=30)[20:]
    rows = [{"id": c, "text": t, "labelled": True} for c, t in labelled.corpus.items()]
    rows += [
        {"id": str(passage["global_chunk_id"]), "text": passage["text"], "labelled": False}
        for passage in extra
    ]
    (tmp_path / "ir").mkdir()
    io.write_jsonl(tmp_path / "ir" / "corpus.jsonl", rows)
    rel = {q: sorted(r) for q, r in labelled.relevant_docs.items()}
    io.write_json(
        tmp_path / "ir" / "test.json", {"queries": labelled.queries, "relevant_docs": rel}
    )
    common = config.replace(
        config.load("params.yaml").common, dims=[32, 8], max_seq_length=64, eval_batch_size=16
    )
    out, pq = tmp_path / "m.json", tmp_path / "pq.json"
    scores = evaluation.run_eval(str(tiny_model_dir), str(tmp_path / "ir"), out, pq, common, True)
    assert io.read_json(out) == scores
    per_query = io.read_json(pq)
    assert set(per_query) == {"dim_32", "dim_8", "hybrid_dim_32", "hybrid_dim_8", "bm25"}
    for d in (32, 8):
        for prefix in ("", "labelled_", "hybrid_"):
            assert all(f"{prefix}dim_{d}_{m}" in scores for m in METRIC_NAMES), (prefix, d)
        hybrid = list(per_query[f"hybrid_dim_{d}"].values())
        assert sum(hybrid) / len(hybrid) == pytest.approx(scores[f"hybrid_dim_{d}_ndcg@10"], 1e-5)
        for precision, width in (("float32", 4 * d), ("int8", d), ("ubinary", d // 8)):
            assert scores[f"{precision}_dim_{d}_bytes_per_vector"] == width
            assert scores[f"{precision}_dim_{d}_index_bytes"] >= 50 * width
        assert 0 <= scores[f"int8_dim_{d}_ndcg@10"] <= 1
        assert 0 <= scores[f"ubinary_dim_{d}_ndcg@10"] <= 1
    assert "bm25_ndcg@10" in scores and "labelled_bm25_ndcg@10" in scores
    # The fusion really used both: BM25 beats this random tiny model, hybrid lies between.
    low, high = sorted((scores["dim_32_ndcg@10"], scores["bm25_ndcg@10"]))
    assert low < scores["hybrid_dim_32_ndcg@10"] < high


def test_any_encoder_with_encode_gets_the_same_figures(tiny_model_dir):
    """What scores an exported model: an object with only ``encode`` returning numpy (no
    encode_query / encode_document) gets exactly the SentenceTransformer's flat metrics."""

    from sentence_transformers import SentenceTransformer

    from embedtune import config
    from embedtune.retrieval import evaluation

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")

    class NumpyEncoder:
        def encode(self, texts, prompt=None, batch_size=32, **_):
            return model.encode(texts, prompt=prompt, batch_size=batch_size)  # numpy

    common = config.replace(config.load("params.yaml").common, dims=[32, 8])
    data = _ir_data(20, 2)

    def scored(encoder):
        q, c = search.encode_data(
            encoder, data, common.eval_batch_size, common.query_prompt, common.document_prompt
        )
        return evaluation.score_embeddings(q, c, data, common, bm25=False)

    ours, per_query = scored(NumpyEncoder())
    ref, _ = scored(model)
    assert ours.keys() == ref.keys() and "hybrid_dim_8_ndcg@10" in ours
    assert all(ours[k] == pytest.approx(ref[k], abs=1e-6) for k in ref)
    assert "bm25" not in per_query and "bm25_ndcg@10" not in ours
