"""Loading sentence-transformers models: the one loader every group uses (retrieval,
training, export, documents), so it sits below all of them.

sentence-transformers is imported inside the functions: it takes seconds to import, and
the offline switches (``embedtune.cli.offline``) must be set before huggingface_hub reads
them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from embedtune import config, io
from embedtune.errors import StageError

log = logging.getLogger(__name__)
MODULES = "modules.json"  # a sentence-transformers folder's list of its modules


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# Where Hugging Face configs keep the dropout on attention probabilities: BERT, RoBERTa,
# XLM-R, MPNet | ModernBERT, DistilBERT and decoder models | GPT-2-style models.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def load_model(path: str | Path, common: config.Common, config_overrides: dict | None = None):
    """Load a local sentence-transformers folder and check it can serve every dimension;
    ``config_overrides``: Hugging Face config keys set before the network is built."""
    from sentence_transformers import SentenceTransformer

    path = Path(path)
    if not path.is_dir():
        raise StageError(f"{path}: model folder not found (run the stages before it)")
    kwargs = {"attn_implementation": "sdpa"} if device() == "cuda" else {}
    model = SentenceTransformer(
        str(path),
        device=device(),
        trust_remote_code=False,
        local_files_only=True,
        model_kwargs=kwargs,
        config_kwargs=config_overrides or None,
    )
    model.max_seq_length = common.max_seq_length
    full = model.get_embedding_dimension()
    if full is None or max(common.dims) > full:
        raise StageError(
            f"params key 'common.dims': {common.dims} exceeds the model's "
            f"embedding dimension {full} ({path})"
        )
    return model


def load_for_training(
    path: str | Path, common: config.Common, attention_dropout: float | None
) -> tuple[object, dict]:
    """The model to fine-tune, with ``attention_dropout`` (None: the model's own) on its
    attention probabilities, and the config values it replaced, for ``restore_config``.

    Why it matters: PyTorch's fused CPU attention kernel (scaled_dot_product_attention)
    does not take dropout, so with dropout on, training falls back to the unfused kernel
    that keeps every attention matrix for the backward pass, most of one step's memory.
    The config is overridden at load time because each model family reads it when it
    builds its attention layers."""
    if attention_dropout is None:
        return load_model(path, common), {}
    # Read the keys from the config alone: loading the weights only to look would hold two
    # copies of the model at once, on the stage with the highest peak.
    hf_config = transformer_config(Path(path))
    replaced = {k: getattr(hf_config, k) for k in ATTENTION_DROPOUT_KEYS if hasattr(hf_config, k)}
    overrides = None
    if not replaced:
        log.warning(
            "%s's config names no attention dropout (%s); train.attention_dropout has no effect",
            path,
            ", ".join(ATTENTION_DROPOUT_KEYS),
        )
    elif any(v != attention_dropout for v in replaced.values()):
        log.info("attention dropout %s (the model's own: %s)", attention_dropout, replaced)
        overrides = dict.fromkeys(replaced, attention_dropout)
    return load_model(path, common, overrides), replaced


def read_modules(model_dir: str | Path) -> list[dict]:
    """The entries of a sentence-transformers folder's modules.json (each with its module
    ``type`` and, for most, the ``path`` of its subfolder); a StageError naming the file if
    it is missing, damaged or not a list of modules."""
    listing = Path(model_dir) / MODULES
    if not listing.is_file():
        raise StageError(f"{listing}: not found (not a sentence-transformers folder?)")
    modules = io.read_json(listing)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise StageError(f"{listing}: not a list of modules")
    return modules


def transformer_folder(model_dir: Path) -> Path:
    """The folder of a sentence-transformers model's Transformer module (its Hugging Face
    config and tokenizer): the model's root for most models, a subfolder for some."""
    modules = read_modules(model_dir)
    sub = next(
        (m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Transformer")), ""
    )
    return model_dir / sub


def transformer_config(model_dir: Path):
    """The Hugging Face config of ``model_dir``'s Transformer module, without its weights."""
    from transformers import AutoConfig

    folder = transformer_folder(model_dir)
    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise StageError(f"{folder}: cannot read the model's config: {exc}") from exc


def restore_config(model, replaced: dict) -> None:
    """Put back the config values ``load_for_training`` replaced, so the saved model's
    config.json describes the model as its base did (a later fine-tune gets its dropout)."""
    hf_config = model[0].auto_model.config
    for k, v in replaced.items():
        setattr(hf_config, k, v)
