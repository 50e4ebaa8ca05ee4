"""Encode with an export through SentenceTransformer's interface (encode, encode_query,
encode_document): the graph gives token embeddings, pooling and normalisation follow the
source folder's own config. Using an export is one call::

    from embedtune.export import load_encoder
    enc = load_encoder("models/export", "onnx_int8")
    vectors = enc.encode_document(["a passage"], batch_size=32)   # numpy, like SentenceTransformer
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedtune.errors import StageError
from embedtune.export.layout import (
    CONFIG,
    DOCUMENT_PROMPT_NAMES,
    FORMATS,
    POOLING_MODES,
    EncoderConfig,
)
from embedtune.io import read_json
from embedtune.retrieval.vectors import unit_rows


class ExportedEncoder:
    """An exported model with SentenceTransformer's encode / encode_query / encode_document
    (prompts, batching, length-sorted batches, truncation at max_seq_length, pooling and
    normalisation as the source folder defines them)."""

    def __init__(self, folder: str | Path, fmt: str, threads: int | None = None):
        folder = Path(folder)
        meta = read_json(folder / CONFIG) if (folder / CONFIG).is_file() else None
        if meta is None:
            raise StageError(f"{folder}: not an export folder (no {CONFIG})")
        if fmt not in meta["formats"]:
            raise StageError(
                f"{folder}: format {fmt!r} was not exported (there: {', '.join(meta['formats'])})"
            )
        from transformers import AutoTokenizer

        self.format = fmt
        self.config = EncoderConfig(**{k: meta[k] for k in EncoderConfig.__dataclass_fields__})
        self.prompts = dict(self.config.prompts)
        self.max_seq_length = self.config.max_seq_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        path = folder / meta["formats"][fmt]
        self._run = (
            _openvino_runner(path, threads) if fmt == "openvino" else ort_runner(path, threads)
        )

    def get_embedding_dimension(self) -> int:
        return self.config.dimension

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None, names: Sequence[str]):
        if prompt is not None:
            return prompt
        if prompt_name is None:
            prompt_name = next((n for n in names if n in self.prompts), None)
        if prompt_name is None:
            prompt_name = self.config.default_prompt_name
        if prompt_name is None:
            return ""
        if prompt_name not in self.prompts:
            raise ValueError(f"prompt name {prompt_name!r} not in the model's prompts")
        return self.prompts[prompt_name]

    def encode_query(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """Like SentenceTransformer.encode_query: the model's "query" prompt by default."""
        prompt = self._resolve_prompt(prompt, prompt_name, ("query",))
        return self.encode(sentences, prompt=prompt, **kwargs)

    def encode_document(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """Like SentenceTransformer.encode_document: "document"/"passage"/"corpus" prompt."""
        prompt = self._resolve_prompt(prompt, prompt_name, DOCUMENT_PROMPT_NAMES)
        return self.encode(sentences, prompt=prompt, **kwargs)

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        device: str | None = None,
    ):
        """Embeddings of ``sentences``: a numpy array (a torch tensor with
        ``convert_to_tensor``), one row per sentence, 1-D for a single string."""
        if device not in (None, "cpu"):
            raise ValueError(f"device {device!r}: exported models run on the CPU here")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        prompt = self._resolve_prompt(prompt, prompt_name, ())
        texts = [prompt + t for t in texts]
        if self.config.do_lower_case:
            texts = [t.lower() for t in texts]
        out = np.zeros((len(texts), self.config.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers batches: similar lengths pad least.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches")
        for start in starts:
            idx = order[start : start + batch_size]
            out[idx] = self._embed([texts[i] for i in idx])
        if truncate_dim is not None:
            out = out[:, :truncate_dim]
        if normalize_embeddings:
            out = unit_rows(out)
        if single:
            out = out[0]
        if convert_to_tensor:
            import torch

            return torch.from_numpy(np.ascontiguousarray(out))
        return out if convert_to_numpy else list(out)

    def _embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation="longest_first",
            max_length=self.max_seq_length,
            return_tensors="np",
        )
        feeds = {n: enc[n].astype(np.int64) for n in self.config.input_names}
        tokens = self._run(feeds).astype(np.float32)
        return pool(tokens, feeds["attention_mask"], self.config.pooling, self.config.normalize)


def pool(tokens: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Sentence embeddings from token embeddings, as sentence-transformers' Pooling and
    Normalize modules compute them."""
    m = mask[..., None].astype(tokens.dtype)
    if mode == "mean":
        emb = (tokens * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    elif mode == "cls":
        emb = tokens[:, 0]
    elif mode == "max":
        emb = np.where(m > 0, tokens, -1e9).max(axis=1)
    else:
        raise StageError(f"pooling mode {mode!r} is not supported (supported: {POOLING_MODES})")
    if normalize:
        emb = unit_rows(emb)
    return emb


def decline_openvino_telemetry() -> None:
    """Keep OpenVINO from reporting usage over the network. Its converter and ``import
    openvino`` send usage statistics from a forked process unless a consent file in the
    home folder declines; a pipeline stage after fetch must stay off the network, and a
    child forked from a many-threaded process once deadlocked in DNS and hung a test run.
    openvino_telemetry has no switch for this short of writing that file into the user's
    home, so its consent checker is told there is no consent folder: it then declines."""
    try:
        from openvino_telemetry.utils.opt_in_checker import OptInChecker
    except ImportError:
        return
    OptInChecker.consent_file_base_dir = staticmethod(lambda: None)


def ort_runner(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino_runner(path: Path, threads: int | None):
    decline_openvino_telemetry()
    import openvino as ov

    # OpenVINO runs in bfloat16 by default on CPUs that have it: f32 keeps embeddings exact.
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def run(feeds):
        return request.infer(feeds)[compiled.output(0)]

    return run


def load_encoder(
    folder: str | Path = "models/export", fmt: str = "onnx", threads: int | None = None
):
    """The one call to use an export: ``load_encoder("models/export", "onnx_int8")``.
    ``fmt`` is one of FORMATS; ``threads`` caps the runtime's CPU threads (None: its default)."""
    if fmt not in FORMATS:
        raise StageError(f"export format {fmt!r}: want one of {', '.join(FORMATS)}")
    return ExportedEncoder(folder, fmt, threads)
