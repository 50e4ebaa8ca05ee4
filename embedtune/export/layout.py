"""The export folder's layout, shared by the exporter that writes it and the runtime encoder
that reads it: file names, the encoder config, and what a sentence-transformers folder must
look like to be exported (Transformer, Pooling, optional Normalize)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedtune.errors import StageError
from embedtune.io import read_json
from embedtune.models import MODULES, read_modules

FORMATS = ("onnx", "onnx_int8", "openvino")
FILES = {"onnx": "model.onnx", "onnx_int8": "model_int8.onnx", "openvino": "openvino/model.xml"}
CONFIG = "export.json"  # pooling, normalisation, prompts, lengths: what the encoder needs
POOLING_MODES = ("mean", "cls", "max")
# Inputs the exported graph takes, in this order (the ones the tokenizer produces).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The modules.json entries the export understands; anything else (Dense, LayerNorm, a
# Router...) would change the embeddings and is refused rather than silently dropped.
KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")
# sentence-transformers' legacy boolean pooling keys -> mode names.
LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")  # encode_document's order


@dataclass(frozen=True)
class EncoderConfig:
    """What encoding needs besides the graph and the tokenizer."""

    pooling: str  # one of POOLING_MODES
    normalize: bool
    do_lower_case: bool
    max_seq_length: int
    dimension: int
    prompts: dict[str, str]
    default_prompt_name: str | None
    input_names: list[str]


def pooling_mode(config: dict, where: str | Path) -> str:
    """The single pooling mode a Pooling config asks for; an error for anything the export
    cannot reproduce outside the graph."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else list(mode)
    else:
        modes = [m for k, m in LEGACY_POOLING.items() if config.get(k)] or ["mean"]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise StageError(
            f"{where}: pooling mode {'+'.join(map(str, modes))!r} is not supported by the "
            f"export (supported: {', '.join(POOLING_MODES)})"
        )
    if config.get("include_prompt", True) is False:
        raise StageError(
            f"{where}: include_prompt: false (prompt-excluding pooling) is not supported"
        )
    return modes[0]


def read_encoder_config(model_dir: str | Path, max_seq_length: int) -> EncoderConfig:
    """Pooling, normalisation, casing and prompts of a sentence-transformers folder, read
    from its own files (modules.json, the Pooling folder's config.json, ...)."""
    model_dir = Path(model_dir)
    modules = read_modules(model_dir)
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    for m, kind in zip(modules, kinds, strict=True):
        if kind not in KNOWN_MODULES:
            raise StageError(
                f"{model_dir / MODULES}: module {m.get('type')!r} is not supported by the "
                f"export (supported: {', '.join(KNOWN_MODULES)})"
            )
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise StageError(
            f"{model_dir / MODULES}: modules {kinds} are not Transformer, Pooling "
            "and optionally Normalize"
        )
    pool_path = model_dir / modules[1]["path"] / "config.json"
    pool_cfg = read_json(pool_path)
    st_cfg = model_dir / "sentence_bert_config.json"
    lower = bool(read_json(st_cfg).get("do_lower_case", False)) if st_cfg.is_file() else False
    top = model_dir / "config_sentence_transformers.json"
    top_cfg = read_json(top) if top.is_file() else {}
    dim = pool_cfg.get("embedding_dimension", pool_cfg.get("word_embedding_dimension"))
    return EncoderConfig(
        pooling=pooling_mode(pool_cfg, pool_path),
        normalize=kinds[-1] == "Normalize",
        do_lower_case=lower,
        max_seq_length=max_seq_length,
        dimension=int(dim),
        prompts={k: v or "" for k, v in (top_cfg.get("prompts") or {}).items()},
        default_prompt_name=top_cfg.get("default_prompt_name"),
        input_names=[],
    )
