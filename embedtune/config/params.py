"""The whole params file: its sections, the rules across them, and reading it from YAML.

Errors are StageErrors naming the dotted params key (and the file), converted from pydantic's;
YAML with a repeated key is refused, naming the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from embedtune.config.base import Section, field, rule
from embedtune.config.documents import Chunk, Generate
from embedtune.config.inputs import BuildIrEval, Fetch, Split
from embedtune.config.shared import Common
from embedtune.config.training import Export, Train
from embedtune.errors import StageError
from embedtune.metrics import METRIC_NAMES

# Keys that changed name: the old one gets an error that names the new one.
RENAMED = {"train.columns": "train.pair_order"}
M = TypeVar("M", bound=BaseModel)


class Params(Section):
    common: Common = field(
        Common(), "Shared by every stage: seed, base model, Matryoshka dimensions, prompts."
    )
    fetch: Fetch = field(
        Fetch(),
        "The question-passage pairs and the knowledge base: the bundled sample, a file or the Hub.",
    )
    split: Split = field(Split(), "Train / dev / test split of the pairs.")
    build_ir_eval: BuildIrEval = field(
        BuildIrEval(), "The retrieval evaluation sets built from the splits."
    )
    train: Train = field(Train(), "Matryoshka fine-tuning of the base model on the training pairs.")
    export: Export = field(Export(), "After train: the fine-tuned model for CPU serving.")
    chunk: Chunk = field(
        Chunk(),
        'Optional stages before fetch (documents/dvc.yaml.off; README "Start from your '
        'documents"), off until that file is copied to documents/dvc.yaml. chunk: a folder of '
        "documents split into passages measured in the base model's tokens.",
    )
    generate: Generate = field(
        Generate(),
        "Optional: questions per passage from an OpenAI-compatible endpoint, each kept only if "
        "its passage retrieves it back.",
    )

    @model_validator(mode="after")
    def _across_sections(self) -> Params:
        by_doc = self.split.strategy != "by_document" or self.fetch.columns.document_id
        rule(by_doc, "split.strategy", "'by_document' needs fetch.columns.document_id")
        dims, best = self.common.dims, self.train.best_metric
        m = re.fullmatch(r"eval_dim_(\d+)_cosine_(.+)", best)
        ok = m and int(m.group(1)) in dims and m.group(2) in METRIC_NAMES
        rule(
            ok,
            "train.best_metric",
            f"{best!r} is not a metric the evaluator emits; want eval_dim_<d>_cosine_<metric> "
            f"with d in {dims} and metric in {', '.join(METRIC_NAMES)}",
        )
        return self


def _message(err: Any, prefix: str = "") -> str:
    """One line per pydantic error, naming the dotted params key."""
    parts = prefix.split(".") if prefix else []
    for part in err["loc"]:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"  # a list item: common.dims[0]
        else:
            parts.append(str(part))
    kind, key = err["type"], ".".join(parts)
    if kind == "params_rule":
        key = ".".join([*parts, err["ctx"]["key"]])
        return f"params key {key!r}: {err['msg']}"
    if kind == "extra_forbidden":
        if key in RENAMED:
            return f"params key {key!r} was renamed to {RENAMED[key]!r}; rename it in your file"
        model: Any = Params
        for name in parts[:-1]:
            model = model.model_fields[name].annotation
        return f"params: unknown key {key!r} (known: {', '.join(model.model_fields)})"
    msg, value = err["msg"], err["input"]
    if kind == "value_error":
        msg = str(err["ctx"]["error"])  # our own wording, and never the value (api_key_env)
    elif not isinstance(value, dict | list | BaseModel):
        msg += f", got {type(value).__name__} {value!r}"
    return f"params key {key!r}: {msg}" if key else f"params: {msg}"


def _invalid(exc: ValidationError, prefix: str = "") -> StageError:
    return StageError("\n".join(_message(e, prefix) for e in exc.errors(include_url=False)))


def parse(data: Any) -> Params:
    """Validate a params mapping and return the typed view; a missing key takes its default."""
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        # Not chained: pydantic's own message echoes every input, a pasted API key included.
        raise _invalid(exc) from None


def merge(overrides: dict | None) -> Params:
    """A profile's overrides on the defaults, validated. A key left out takes its field's
    default at every depth, so pydantic's filling of missing fields is the deep merge."""
    return parse({} if overrides is None else overrides)


def replace(model: M, **changes: Any) -> M:
    """A copy of ``model`` (any section, or Params) with ``changes``, validated again, rules
    across fields included; ``model.model_copy(update=...)`` would skip every check."""
    try:
        return type(model).model_validate({**dict(model), **changes})
    except ValidationError as exc:
        raise _invalid(exc) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML keeps the last one without a word,
    so one of two edits of the same key would be silently lost)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: list[Any] = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys may be overridden: that is what they are for
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.append(key)
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, refusing duplicate keys; errors name the file and the line."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except (OSError, yaml.YAMLError) as exc:
        raise StageError(f"{path}: cannot read params: {' '.join(str(exc).split())}") from exc


def in_file(path: str | Path, exc: StageError) -> StageError:
    return StageError("\n".join(f"{path}: {line}" for line in str(exc).splitlines()))


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file (params.yaml, or a profile: any key left out takes its
    default, an empty file is the defaults); errors name the file and the key."""
    data = load_yaml(path)
    try:
        return merge(data)
    except StageError as exc:
        raise in_file(path, exc) from exc


def check_token_limits(conf: Params, keys: tuple[str, ...]) -> None:
    """``chunk.size`` / ``generate.max_question_tokens`` may not exceed common.max_seq_length:
    the model would cut what lies beyond. Checked by the stages that use them, so a profile
    with a short max_seq_length stays valid while those optional stages are off."""
    limit = conf.common.max_seq_length
    for key in keys:
        section, name = key.split(".")
        value = getattr(getattr(conf, section), name)
        if value > limit:
            raise StageError(
                f"params key {key!r}: {value} exceeds common.max_seq_length ({limit}): the "
                "model would never see the tokens beyond it"
            )


def advice(conf: Params) -> list[str]:
    """Settings that are valid but probably not what the user meant."""
    out = []
    if conf.train.gradient_accumulation_steps > 1:
        out.append(
            "train.gradient_accumulation_steps > 1 does not add in-batch negatives: each step "
            f"still ranks against {conf.train.batch_size} texts. For a larger pool use "
            "train.loss: cached with a larger train.batch_size (GradCache keeps memory at "
            "train.mini_batch_size)."
        )
    return out
