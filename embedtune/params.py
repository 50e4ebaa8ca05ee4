"""Typed, strictly validated view of params.yaml.

The file is read once per stage into frozen dataclasses. Every key must be present, no key
may be unknown and every value must have the declared type: a typo in a params file should
stop the run before minutes of work, with the offending key named.

Longer than the other modules on purpose: it is the whole params.yaml schema, every
section's types and every rule across sections, and reads best as one file.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from embedtune.errors import StageError
from embedtune.metrics import METRIC_NAMES

# Keys that changed name: the old one gets an error that names the new one.
RENAMED = {"train.columns": "train.pair_order"}


@dataclass(frozen=True)
class ModelSource:
    """Where the base model comes from (read by fetch only)."""

    source: Literal["package", "local", "hub"]
    package: str | None
    path: str | None
    name: str | None
    revision: str | None


@dataclass(frozen=True)
class Common:
    seed: int
    dims: list[int]
    max_seq_length: int
    eval_batch_size: int
    rrf_k: int  # hybrid retrieval: reciprocal rank fusion constant
    query_prompt: str
    document_prompt: str
    model: ModelSource


@dataclass(frozen=True)
class Columns:
    anchor: str
    positive: str
    chunk_id: str | None  # null: passages are identified by their text
    document_id: str | None


@dataclass(frozen=True)
class CorpusColumns:
    id: str | None  # null: passages are identified by their text
    text: str
    document_id: str | None


@dataclass(frozen=True)
class Corpus:
    """The knowledge base retrieval searches. ``pairs``: only the passages that have
    questions; ``file``: every passage of ``path``, labelled or not."""

    source: Literal["pairs", "file"]
    path: str | None
    columns: CorpusColumns


@dataclass(frozen=True)
class Fetch:
    source: Literal["sample", "file", "hub"]
    path: str | None
    name: str | None
    revision: str | None
    split: str | None
    columns: Columns
    # Share of passage tokens beyond common.max_seq_length that fails the run (null: the
    # share is reported and warned about, never an error).
    max_truncated_share: float | None
    corpus: Corpus


@dataclass(frozen=True)
class Split:
    strategy: Literal["random", "by_chunk", "by_document"]
    test_size: float
    dev_size: float


@dataclass(frozen=True)
class BuildIrEval:
    corpus: Literal["unique", "rows"]


@dataclass(frozen=True)
class HardNegatives:
    """Mining of one hard negative per training pair (sentence-transformers'
    mine_hard_negatives), from the training split only."""

    enabled: bool
    range_min: int  # skip the closest candidates: often unlabelled positives
    range_max: int  # candidates considered per question
    relative_margin: float  # keep a negative only if it scores this share below the positive
    candidates: int  # negatives mined per pair before relevant ones are filtered out


@dataclass(frozen=True)
class Train:
    epochs: float
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    warmup_ratio: float
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"]
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    pair_order: Literal["anchor_positive", "positive_anchor"]
    loss: Literal["mnrl", "cached", "gist", "cached_gist"]
    mini_batch_size: int
    gradient_checkpointing: bool  # recompute activations in backward: about half the memory
    attention_dropout: float | None  # None: the model's own (e.g. BERT's 0.1)
    processes: int  # per node
    nodes: int  # machines joined by torchrun's rendezvous (EMBEDTUNE_RDZV_ENDPOINT)
    best_metric: str
    logging_steps: int
    hard_negatives: HardNegatives


ExportFormat = Literal["onnx", "onnx_int8", "openvino"]


@dataclass(frozen=True)
class Export:
    """The export stage: the fine-tuned model as ONNX (float32, int8) and OpenVINO IR."""

    formats: list[ExportFormat]
    opset: int


@dataclass(frozen=True)
class Chunk:
    """Optional stage (documents/dvc.yaml.off): a folder of documents split into passages of
    at most ``size`` tokens of the base model's own tokenizer."""

    folder: str
    size: int  # tokens, prompt and special tokens included; <= common.max_seq_length
    overlap: int  # tokens shared by consecutive passages of one document; < size
    on_bad_document: Literal["fail", "skip"]  # unreadable, empty or encrypted documents


@dataclass(frozen=True)
class RoundTrip:
    """Keep a question only if its own passage ranks in the top ``top_k`` for it."""

    retriever: Literal["bm25", "model", "none"]  # model: the base model, cosine
    top_k: int
    min_score: float  # the passage's score must reach it (BM25 units or cosine)


@dataclass(frozen=True)
class Generate:
    """Optional stage: questions per passage from an OpenAI-compatible endpoint."""

    base_url: str
    model: str
    api_key_env: str | None  # NAME of the variable holding the key; null: no key
    prompt: str  # template file with {n} and {passage}
    questions_per_passage: int
    concurrency: int
    timeout_s: float
    max_retries: int
    temperature: float
    max_tokens: int
    max_question_tokens: int  # longer questions are dropped (query prompt included)
    dedup_threshold: float | None  # cosine with the base model; null: exact duplicates only
    roundtrip: RoundTrip


@dataclass(frozen=True)
class Params:
    common: Common
    fetch: Fetch
    split: Split
    build_ir_eval: BuildIrEval
    train: Train
    export: Export
    chunk: Chunk
    generate: Generate


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(value, inner[0], key)
    if origin is Literal:
        if value not in get_args(tp):
            raise StageError(f"params key {key!r}: {value!r} is not {_type_name(tp)}")
        return value
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise StageError(f"params key {key!r}: expected a list, got {value!r}")
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    # bool is a subclass of int: reject it where a number is wanted, and accept ints for floats.
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise StageError(
            f"params key {key!r}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise StageError(f"params key {prefix!r}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    join = (prefix + ".") if prefix else ""
    unknown = sorted(set(data) - set(names))
    for key in unknown:
        if join + key in RENAMED:
            raise StageError(
                f"params: key {join + key!r} was renamed to {RENAMED[join + key]!r}; "
                "rename it in your params file"
            )
    if unknown:
        raise StageError(f"params: unknown key {join + unknown[0]!r} (known: {', '.join(names)})")
    missing = [n for n in names if n not in data]
    if missing:
        raise StageError(f"params: missing key {join + missing[0]!r}")
    return cls(**{n: _convert(data[n], hints[n], join + n) for n in names})


def _check(p: Params) -> None:
    """Cross-field rules the types alone cannot express."""
    c = p.common
    if not c.dims or any(d <= 0 for d in c.dims) or c.dims != sorted(set(c.dims), reverse=True):
        raise StageError("params key 'common.dims': want distinct positive ints, largest first")
    for key, value in (
        ("common.max_seq_length", c.max_seq_length),
        ("common.eval_batch_size", c.eval_batch_size),
        ("common.rrf_k", c.rrf_k),
        ("train.batch_size", p.train.batch_size),
        ("train.gradient_accumulation_steps", p.train.gradient_accumulation_steps),
        ("train.logging_steps", p.train.logging_steps),
        ("train.mini_batch_size", p.train.mini_batch_size),
        ("train.processes", p.train.processes),
        ("train.nodes", p.train.nodes),
    ):
        if value < 1:
            raise StageError(f"params key {key!r}: must be >= 1, got {value}")
    needs = {"package": "package", "local": "path", "hub": "name"}[c.model.source]
    if not getattr(c.model, needs):
        raise StageError(
            f"params key 'common.model.{needs}': required when source is {c.model.source!r}"
        )
    if c.model.source == "hub" and not c.model.revision:
        raise StageError("params key 'common.model.revision': pin a revision for a hub model")
    f = p.fetch
    if f.source == "file" and not f.path:
        raise StageError("params key 'fetch.path': required when source is 'file'")
    if f.source == "hub" and not (f.name and f.revision and f.split):
        raise StageError(
            "params keys 'fetch.name', 'fetch.revision', 'fetch.split': required for 'hub'"
        )
    if f.corpus.source == "file" and not f.corpus.path:
        raise StageError("params key 'fetch.corpus.path': required when source is 'file'")
    if f.max_truncated_share is not None and not 0 <= f.max_truncated_share <= 1:
        raise StageError("params key 'fetch.max_truncated_share': want a share 0..1 or null")
    s = p.split
    if not 0 < s.test_size < 1 or not 0 <= s.dev_size < 1 or s.test_size + s.dev_size >= 1:
        raise StageError(
            "params keys 'split.test_size'/'split.dev_size': want 0 < test, 0 <= dev, sum < 1"
        )
    if s.strategy == "by_document" and not f.columns.document_id:
        raise StageError(
            "params key 'split.strategy': 'by_document' needs fetch.columns.document_id"
        )
    t = p.train
    if t.epochs <= 0 or t.learning_rate <= 0 or not 0 <= t.warmup_ratio < 1:
        raise StageError(
            "params keys 'train.epochs'/'train.learning_rate'/'train.warmup_ratio' out of range"
        )
    if t.attention_dropout is not None and not 0 <= t.attention_dropout < 1:
        raise StageError(
            f"params key 'train.attention_dropout': {t.attention_dropout} out of range; want "
            "0 <= value < 1, or null for the model's own"
        )
    h = t.hard_negatives
    if h.range_min < 0 or h.range_max <= h.range_min or h.candidates < 1:
        raise StageError(
            "params keys 'train.hard_negatives.range_min'/'range_max'/'candidates': want "
            "0 <= range_min < range_max and candidates >= 1"
        )
    if not 0 <= h.relative_margin < 1:
        raise StageError("params key 'train.hard_negatives.relative_margin': want 0 <= x < 1")
    _check_documents(p)
    e = p.export
    if not e.formats or len(set(e.formats)) != len(e.formats):
        raise StageError(f"params key 'export.formats': want distinct formats, got {e.formats}")
    if e.opset < 18:  # torch's dynamo exporter writes opset 18 and up
        raise StageError(f"params key 'export.opset': want >= 18, got {e.opset}")
    m = re.fullmatch(r"eval_dim_(\d+)_cosine_(.+)", t.best_metric)
    if not m or int(m.group(1)) not in c.dims or m.group(2) not in METRIC_NAMES:
        raise StageError(
            f"params key 'train.best_metric': {t.best_metric!r} is not a metric the evaluator "
            f"emits; want eval_dim_<d>_cosine_<metric> with d in {c.dims} and metric in "
            f"{', '.join(METRIC_NAMES)}"
        )


def _check_documents(p: Params) -> None:
    """Rules of the optional chunk and generate stages (limits that depend on
    common.max_seq_length are checked by those stages: see ``check_token_limits``)."""
    ch, g = p.chunk, p.generate
    if ch.size < 1 or not 0 <= ch.overlap < ch.size:
        raise StageError(
            f"params keys 'chunk.size'/'chunk.overlap': want size >= 1 and 0 <= overlap < size, "
            f"got {ch.size}/{ch.overlap}"
        )
    for key, value in (
        ("generate.questions_per_passage", g.questions_per_passage),
        ("generate.concurrency", g.concurrency),
        ("generate.max_tokens", g.max_tokens),
        ("generate.roundtrip.top_k", g.roundtrip.top_k),
        ("generate.max_question_tokens", g.max_question_tokens),
    ):
        if value < 1:
            raise StageError(f"params key {key!r}: must be >= 1, got {value}")
    if g.max_retries < 0 or g.timeout_s <= 0 or not 0 <= g.temperature <= 2:
        raise StageError(
            "params keys 'generate.max_retries'/'timeout_s'/'temperature': want retries >= 0, "
            "timeout > 0 and 0 <= temperature <= 2"
        )
    if g.dedup_threshold is not None and not 0 < g.dedup_threshold <= 1:
        raise StageError("params key 'generate.dedup_threshold': want 0 < x <= 1 or null")
    if g.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", g.api_key_env):
        # A key pasted here by mistake would end up in dvc.lock: refuse anything that is not
        # a variable name, without echoing it.
        raise StageError(
            "params key 'generate.api_key_env': want the NAME of an environment variable "
            "(letters, digits, _), never the key itself"
        )


def check_token_limits(p: Params, keys: tuple[str, ...]) -> None:
    """``chunk.size`` / ``generate.max_question_tokens`` may not exceed common.max_seq_length:
    the model would cut what lies beyond. Checked by the stages that use them, so a profile
    with a short max_seq_length stays valid while those optional stages are off."""
    limit = p.common.max_seq_length
    for key in keys:
        section, name = key.split(".")
        value = getattr(getattr(p, section), name)
        if value > limit:
            raise StageError(
                f"params key {key!r}: {value} exceeds common.max_seq_length ({limit}): the "
                "model would never see the tokens beyond it"
            )


def advice(p: Params) -> list[str]:
    """Settings that are valid but probably not what the user meant."""
    out = []
    if p.train.gradient_accumulation_steps > 1:
        out.append(
            "train.gradient_accumulation_steps > 1 does not add in-batch negatives: each step "
            f"still ranks against {p.train.batch_size} texts. For a larger pool use "
            "train.loss: cached with a larger train.batch_size (GradCache keeps memory at "
            "train.mini_batch_size)."
        )
    return out


def parse(data: Any) -> Params:
    """Validate a parsed params mapping and return the typed view."""
    params = _build(Params, data, "")
    _check(params)
    return params


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StageError(f"{path}: cannot read params: {exc}") from exc
    try:
        return parse(data)
    except StageError as exc:
        raise StageError(f"{path}: {exc}") from exc
