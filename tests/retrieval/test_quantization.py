"""Quantized retrieval: lossless where the quantization is, and the search as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedtune.retrieval import quantization, search


def _data(n_passages: int, n_queries: int, seed: int) -> search.IRData:
    rng = np.random.default_rng(seed)
    ids = [f"p{i:03d}" for i in range(n_passages)]
    relevant = {
        f"q{j}": {ids[i] for i in rng.choice(n_passages, 1 + j % 2, replace=False)}
        for j in range(n_queries)
    }
    return search.IRData({i: "text" for i in ids}, {q: "q" for q in relevant}, relevant)


def _float_ndcg(q, c, data, d) -> float:
    scores = search.evaluate_embeddings(torch.tensor(q), torch.tensor(c), data, [d])
    return scores[d][0]["ndcg@10"]


def test_binary_is_lossless_on_sign_vectors():
    """+-1 passages and queries: the sign bits are the whole vector, so Hamming order is
    cosine order and rescoring by q . bits = (q . x + sum(q)) / 2 keeps it. 300 passages:
    the 40-candidate cut is exercised. Dims 64, 16 and 4 make every normalised value a power
    of two, so ties are exact in both and broken by id alike."""
    rng = np.random.default_rng(0)
    c = rng.choice([-1.0, 1.0], size=(300, 64))
    q = rng.choice([-1.0, 1.0], size=(40, 64))
    data = _data(300, 40, seed=1)
    out = quantization.quantized_metrics(q, c, data, [64, 16, 4])
    for d in (64, 16, 4):
        assert out[f"ubinary_dim_{d}_ndcg@10"] == pytest.approx(
            _float_ndcg(q, c, data, d), abs=1e-6
        )
        assert 0 < out[f"ubinary_dim_{d}_ndcg@10"] < 1  # not trivially perfect
        dense = search.dense_rankings(torch.tensor(q), torch.tensor(c), data, [d])[d]
        binary = quantization.quantized_rankings(q, c, data, d, "ubinary")
        assert [h[:10] for h in dense] == binary


def test_int8_is_lossless_when_the_values_sit_on_its_grid():
    """Passages +-e_i take only each dimension's minimum, maximum and 0, which int8 maps to
    the same affine grid in every dimension; float queries then rank them as floats do."""
    d = 8
    c = np.vstack([np.eye(d), -np.eye(d)])
    q = np.random.default_rng(2).normal(size=(30, d))
    data = _data(2 * d, 30, seed=3)
    out = quantization.quantized_metrics(q, c, data, [d])
    assert out[f"int8_dim_{d}_ndcg@10"] == pytest.approx(_float_ndcg(q, c, data, d), abs=1e-6)
    dense = search.dense_rankings(torch.tensor(q), torch.tensor(c), data, [d])[d]
    assert [h[:10] for h in dense] == quantization.quantized_rankings(q, c, data, d, "int8")
    # Binary is lossy here (-e_i and every e_j share most bits): the check can fail.
    assert out[f"ubinary_dim_{d}_ndcg@10"] != pytest.approx(out[f"int8_dim_{d}_ndcg@10"])


def _reference_binary_search(q, c, top_k, multiplier):
    """The documented recipe, one query at a time: Hamming distance between sign bits, the
    top_k * multiplier nearest (ties by row), rescored by float query . 0/1 bits."""
    bits_c = c > 0
    out = []
    for v in q:
        hamming = [(int((bits_c[i] != (v > 0)).sum()), i) for i in range(len(c))]
        cand = [i for _, i in sorted(hamming)[: top_k * multiplier]]
        rescored = sorted(cand, key=lambda i: (-float(v @ bits_c[i]), i))
        out.append(rescored[:top_k])
    return out


def test_binary_search_follows_the_documented_recipe():
    rng = np.random.default_rng(4)
    c = rng.normal(size=(120, 24)).astype(np.float32)
    q = rng.normal(size=(15, 24)).astype(np.float32)
    got = quantization.search(q, c, "ubinary", top_k=5, multiplier=3).tolist()
    assert got == _reference_binary_search(q, c, 5, 3)
    # Rescoring matters: the Hamming order alone differs for some query.
    assert got != quantization.search(q, c, "ubinary", top_k=5, multiplier=1).tolist()


def test_int8_is_calibrated_on_the_corpus_and_close_to_float():
    rng = np.random.default_rng(5)
    c = rng.normal(size=(200, 32))
    q = c[:50] + rng.normal(scale=0.3, size=(50, 32))  # each query near one passage
    ids = [f"p{i:03d}" for i in range(200)]
    data = search.IRData({i: "t" for i in ids}, {f"q{j}": "q" for j in range(50)},
                            {f"q{j}": {ids[j]} for j in range(50)})  # fmt: skip
    out = quantization.quantized_metrics(q, c, data, [32])
    assert out["int8_dim_32_ndcg@10"] == pytest.approx(_float_ndcg(q, c, data, 32), abs=0.02)


def test_bytes_per_vector_and_index_size():
    assert [
        quantization.bytes_per_vector(precision, 384) for precision in quantization.PRECISIONS
    ] == [
        1536,
        384,
        48,
    ]
    assert quantization.bytes_per_vector("ubinary", 60) == 8  # bits are packed in whole bytes
    assert quantization.index_bytes("float32", 384, 635) == 635 * 1536
    assert quantization.index_bytes("int8", 64, 10) == 10 * 64 + 2 * 4 * 64  # + min and max
    with pytest.raises(ValueError, match="unknown precision"):
        quantization.search(np.ones((1, 8)), np.ones((2, 8)), "int4")
