"""Knowledge-base embeddings encoded once and read again wherever the same encoder would make
the same rows: the base model's, written by the baseline stage for the train stage's
hard-negative mining; the fine-tuned model's, written by the train stage from its last dev
evaluation of the chosen checkpoint, for the evaluate stage and export's PyTorch row.

The folder holds ``embeddings.npy`` (float32, full dimension, one row per passage of
build_ir_eval's corpus, in its order) and ``index.json`` (the passage ids and, under "key",
the ``identity`` the rows were made under: the model's bytes, the document prompt, the
sequence length, the batch size and the encoder). A reader whose identity differs gets
nothing and encodes itself, so a stale file can never be used. The batch size is part of
it because it sets each batch's padding, and with it the last bits of an embedding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedtune import config, io

if TYPE_CHECKING:
    import torch

EMBEDDINGS = "embeddings.npy"
INDEX = "index.json"


def identity(model_dir: str | Path, common: config.Common, encoder: str | None = None) -> dict:
    """What the stored rows were made under: everything that shapes a passage's embedding
    (the model folder's bytes, the document prompt, the sequence length, the batch size and
    the encoder: ``torch-cpu``, ``torch-cuda``, ``onnx``, ...; None: PyTorch on this
    machine's device)."""
    return {
        "model": io.folder_digest(model_dir),
        "document_prompt": common.document_prompt,
        "max_seq_length": common.max_seq_length,
        "batch_size": common.eval_batch_size,
        "encoder": encoder or identity_encoder(),
    }


def identity_encoder() -> str:
    """PyTorch's name on this machine's device, as identities record it."""
    from embedtune.models import device

    return f"torch-{device()}"


def save(folder: str | Path, ids: list[str], embeddings: torch.Tensor, made_under: dict) -> None:
    """Write the rows and their index; the folder appears only when both are complete."""
    matrix = embeddings.float().numpy() if hasattr(embeddings, "numpy") else embeddings
    if len(ids) != len(matrix):
        raise ValueError(f"{len(ids)} ids for {len(matrix)} embedding rows")
    with io.atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / EMBEDDINGS, np.asarray(matrix, dtype=np.float32))
        (tmp / INDEX).write_text(json.dumps({"key": made_under, "ids": ids}), encoding="utf-8")


def save_none(folder: str | Path, reason: str) -> None:
    """An empty store (a stage's output must exist even when it has no rows to give):
    ``lookup`` answers it with ``reason``."""
    with io.atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        np.save(tmp / EMBEDDINGS, np.zeros((0, 0), dtype=np.float32))
        (tmp / INDEX).write_text(
            json.dumps({"key": None, "reason": reason, "ids": []}), encoding="utf-8"
        )


@dataclass(frozen=True)
class Stored:
    """Stored rows (memory-mapped: only the rows used are read) and each text's row."""

    matrix: np.ndarray
    row_of: dict[str, int]


def lookup(
    folder: str | Path, made_under: dict, corpus: dict[str, str], any_encoder: bool = False
) -> tuple[Stored | None, str]:
    """(the rows of ``folder`` if they were made under ``made_under`` (an ``identity``),
    else None and the reason); ``corpus`` (id -> text, build_ir_eval's) names the rows.
    ``any_encoder``: rows of any encoder of the same model will do (each matches PyTorch
    within ``common.encoder.tolerance``), for uses that only rank candidates."""
    folder = Path(folder)
    if not (folder / INDEX).is_file() or not (folder / EMBEDDINGS).is_file():
        return None, f"{folder}: no stored embeddings"
    index = io.read_json(folder / INDEX)
    if index.get("key") is None:
        return None, f"{folder}: holds no rows ({index.get('reason', 'empty')})"
    key = dict(index["key"])
    if any_encoder:
        key["encoder"] = made_under["encoder"]
    if key != made_under:
        return None, f"{folder}: made by another model, prompt, length, batch size or encoder"
    row_of: dict[str, int] = {}
    for i, pid in enumerate(index["ids"]):
        text = corpus.get(pid)
        if text is not None:
            row_of.setdefault(text, i)
    return Stored(np.load(folder / EMBEDDINGS, mmap_mode="r"), row_of), ""


def for_texts(model, texts: list[str], stored: Stored | None, common: config.Common):
    """Embeddings of ``texts`` in their order: stored rows where there are some, the rest
    encoded now. Returns (float32 matrix, how many texts were encoded)."""
    from embedtune.retrieval import search

    row_of = stored.row_of if stored is not None else {}
    have = [i for i, t in enumerate(texts) if t in row_of]
    missing = [i for i, t in enumerate(texts) if t not in row_of]
    out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    if have:
        out[have] = stored.matrix[[row_of[texts[i]] for i in have]]
    if missing:
        encoded = search.encode(
            model,
            [texts[i] for i in missing],
            common.document_prompt,
            common.eval_batch_size,
            document=True,
        )
        out[missing] = encoded.float().numpy()
    return out, len(missing)
