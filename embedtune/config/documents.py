"""The sections of the optional document stages: chunk and generate."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from embedtune.config.base import Pos, Section, field, rule


class Chunk(Section):
    folder: str = field("documents/input", ".txt, .md, .html, .pdf files (subfolders too)")
    size: Pos = field(
        256, "max tokens per passage (prompt + special tokens); <= common.max_seq_length"
    )
    overlap: int = field(0, "tokens shared by consecutive passages of a document; < size", ge=0)
    on_bad_document: Literal["fail", "skip"] = field(
        "fail", "fail | skip: unreadable, empty or encrypted documents"
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Chunk:
        rule(self.overlap < self.size, "overlap", "must be < size")
        return self


class RoundTrip(Section):
    retriever: Literal["bm25", "model", "none"] = field(
        "bm25", "bm25 | model (the base model, cosine) | none"
    )
    top_k: Pos = field(3, "the passage must rank in the top_k for its question")
    min_score: float = field(0.0, "and score at least this (BM25 units, or cosine for model)")


class Generate(Section):
    base_url: str = field(
        "https://api.openai.com/v1", "any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, TGI)"
    )
    model: str = field("gpt-4o-mini", "model name the endpoint serves")
    api_key_env: str | None = field(
        "OPENAI_API_KEY", "the NAME of the variable holding the key; null: no key (local servers)"
    )
    prompt: str = field("prompts/generate.txt", "template with {n} and {passage}")
    questions_per_passage: Pos = field(3, "questions asked for per passage")
    concurrency: Pos = field(4, "requests in flight at once")
    timeout_s: float = field(60.0, "per request attempt", gt=0)
    max_retries: int = field(5, "on connection errors, timeouts, 429 and 5xx, with backoff", ge=0)
    temperature: float = field(0.7, "sampling temperature", ge=0, le=2)
    max_tokens: Pos = field(512, "per answer")
    max_question_tokens: Pos = field(
        64, "longer questions are dropped (base model tokens, query prompt included)"
    )
    dedup_threshold: float | None = field(
        None,
        "e.g. 0.95: near-duplicates by base-model cosine; null: normalised exact only",
        gt=0,
        le=1,
    )
    roundtrip: RoundTrip = field(
        RoundTrip(), "keep a question only if its own passage ranks high for it"
    )

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # A key pasted here by mistake would end up in dvc.lock: refuse it, without echoing it.
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("want the NAME of an environment variable, never the key itself")
        return value
