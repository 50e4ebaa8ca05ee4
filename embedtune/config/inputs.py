"""The sections of the data stages: fetch (pairs and knowledge base), split, build_ir_eval."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from embedtune.config.base import Section, Share, field, rule


class Columns(Section):
    anchor: str = field("question", "the questions")
    positive: str = field("text", "the passages that answer them")
    chunk_id: str | None = field(
        "global_chunk_id", "passage id; null: passages are identified by their text"
    )
    document_id: str | None = field(
        "case_name", "optional (null); needed by split.strategy by_document"
    )


class CorpusColumns(Section):
    id: str | None = field(
        "global_chunk_id", "passage id; null: passages are identified by their text"
    )
    text: str = field("text", "the passages")
    document_id: str | None = field("case_name", "optional (null)")


class Corpus(Section):
    source: Literal["pairs", "file"] = field(
        "file", "file: every passage of path | pairs: only the labelled passages"
    )
    path: str | None = field(
        "sample/legal_kb.csv.gz", "read when source is file; DVC tracks it as a dependency"
    )
    columns: CorpusColumns = field(CorpusColumns(), "role -> column of the corpus file")

    @model_validator(mode="after")
    def _file_has_path(self) -> Corpus:
        rule(self.source != "file" or self.path, "path", "required when source is 'file'")
        return self


class Fetch(Section):
    source: Literal["sample", "file", "hub"] = field("sample", "sample | file | hub")
    path: str | None = field(
        "sample/legal_sample.csv.gz", "read by sample/file; DVC tracks it as a dependency"
    )
    name: str | None = field(None, "hub dataset id")
    revision: str | None = field(None, "hub: pinned commit (or branch)")
    split: str | None = field(None, "hub split, e.g. train")
    columns: Columns = field(Columns(), "role -> column of the source")
    max_truncated_share: float | None = field(
        None,
        "e.g. 0.1: fail when >10% of passage tokens lie beyond max_seq_length; null: warn only",
        ge=0,
        le=1,
    )
    corpus: Corpus = field(
        Corpus(), "the knowledge base retrieval searches (evaluation, BM25, mining)"
    )

    @model_validator(mode="after")
    def _source_has_its_keys(self) -> Fetch:
        rule(self.source != "file" or self.path, "path", "required when source is 'file'")
        for key in ("name", "revision", "split"):
            rule(self.source != "hub" or getattr(self, key), key, "required when source is 'hub'")
        return self


class Split(Section):
    strategy: Literal["random", "by_chunk", "by_document"] = field(
        "random", "random | by_chunk | by_document"
    )
    test_size: float = field(0.1, "share of all pairs held out for the final test", gt=0, lt=1)
    dev_size: Share = field(0.1, "share of all pairs that picks the best checkpoint (0: test does)")

    @model_validator(mode="after")
    def _train_keeps_some(self) -> Split:
        rule(self.test_size + self.dev_size < 1, "test_size", "test_size + dev_size must be < 1")
        return self


class BuildIrEval(Section):
    corpus: Literal["unique", "rows"] = field(
        "unique", "unique: one entry per chunk | rows: one per pair (reference)"
    )
