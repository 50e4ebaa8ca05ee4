"""Which encoder makes a stage's evaluation embeddings: PyTorch, or an exported graph of the
same model when it gives the same embeddings faster (``common.encoder``).

The exported float32 graphs compute PyTorch's embeddings to within about 2e-7, and how much
faster they run depends on the CPU (1.1x to 2.25x measured on machines of one kind), so
``auto`` measures where it runs: it exports the model once, encodes a probe batch of the
stage's own texts with PyTorch and each graph, drops a graph whose embeddings differ from
PyTorch's by more than ``encoder.tolerance``, and keeps the fastest of what is left, PyTorch
included. An export costs seconds, so ``auto`` skips it when PyTorch alone would finish
within ``encoder.min_seconds``; on a GPU PyTorch is used.

The choice is logged and named in the embeddings' identity (``embedding_cache.identity``),
so rows one encoder made are never taken for another's.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedtune import config, models
from embedtune.errors import StageError
from embedtune.export.exporter import export_model
from embedtune.export.runtime import load_encoder

log = logging.getLogger(__name__)

CANDIDATES = ("openvino", "onnx")  # the float32 graphs; int8 changes the embeddings
OPSET = 18  # torch's dynamo exporter writes opset 18 and later


@dataclass(frozen=True)
class Choice:
    """The encoder a stage uses, its name in embedding identities, and why it was chosen."""

    encoder: object
    name: str
    reason: str


def probe_texts(texts: list[str], size: int) -> list[str]:
    """``size`` texts spread evenly over ``texts`` (every n-th): short and long ones alike,
    the same ones on every run."""
    if len(texts) <= size:
        return list(texts)
    step = len(texts) / size
    return [texts[int(i * step)] for i in range(size)]


def _encode(encoder, texts: list[str], common: config.Common) -> tuple[np.ndarray, float]:
    """(document embeddings of ``texts``, seconds), after one warm-up batch: a first call
    pays for allocation and graph compilation, which a corpus-sized run pays once."""
    kwargs = {"prompt": common.document_prompt or None, "batch_size": common.eval_batch_size}
    fn = getattr(encoder, "encode_document", None) or encoder.encode
    fn(texts[:2], **kwargs)
    start = time.perf_counter()
    out = np.asarray(fn(texts, **kwargs, convert_to_numpy=True), dtype=np.float32)
    return out, time.perf_counter() - start


def choose(model, model_dir: str | Path, texts: list[str], common: config.Common) -> Choice:
    """The encoder for ``texts`` (the passages a stage is about to encode) under
    ``common.encoder``: ``model`` (a loaded SentenceTransformer) or one of its exports."""
    cfg = common.encoder
    torch_name = torch_encoder_name(cfg)
    device = models.device()
    exported = cfg.backend in CANDIDATES
    if exported and (device != "cpu" or cfg.processes > 1):
        raise StageError(
            f"params key 'common.encoder.backend': {cfg.backend!r} runs in one process on the "
            f"CPU (here: {device}, {cfg.processes} processes); use auto or torch"
        )
    if not exported and (cfg.backend == "torch" or device != "cpu" or cfg.processes > 1):
        why = f"encoder.backend {cfg.backend} on {device}, {cfg.processes} process(es)"
        return Choice(pooled(model, cfg), torch_name, why)
    probe = probe_texts(texts, cfg.probe)
    reference, torch_s = _encode(model, probe, common)
    estimate = torch_s * len(texts) / max(1, len(probe))
    if cfg.backend == "auto" and estimate < cfg.min_seconds:
        return Choice(
            model,
            torch_name,
            f"PyTorch: about {estimate:.0f} s for {len(texts)} texts, below "
            f"encoder.min_seconds ({cfg.min_seconds:g}), so nothing is exported",
        )
    candidates = CANDIDATES if cfg.backend == "auto" else (cfg.backend,)
    timings = {torch_name: torch_s}
    rejected: list[str] = []
    chosen = (model, torch_name)
    with _export_folder() as folder:
        export_model(model, model_dir, folder, list(candidates), OPSET)
        for fmt in candidates:
            encoder = load_encoder(folder, fmt)  # held in memory: the folder may go
            out, seconds = _encode(encoder, probe, common)
            diff = float(np.abs(out - reference).max())
            if diff > cfg.tolerance:
                rejected.append(f"{fmt} differs by {diff:.1e} > encoder.tolerance")
                continue
            timings[fmt] = seconds
            # A graph asked for by name is used when it matches, fast or not; auto races.
            if cfg.backend == fmt or seconds < timings[chosen[1]]:
                chosen = (encoder, fmt)
    speeds = ", ".join(
        f"{name} {len(probe) / s:.1f}/s" for name, s in sorted(timings.items(), key=lambda x: x[1])
    )
    if cfg.backend != "auto" and chosen[1] != cfg.backend:
        raise StageError(
            f"params key 'common.encoder.backend': {cfg.backend} does not give PyTorch's "
            f"embeddings ({'; '.join(rejected)}); use auto or torch"
        )
    if rejected and chosen[1] == torch_name:
        log.warning("no export matches PyTorch (%s): encoding with PyTorch", "; ".join(rejected))
    reason = f"probe of {len(probe)} texts: {speeds}" + (
        f"; rejected: {'; '.join(rejected)}" if rejected else ""
    )
    return Choice(chosen[0], chosen[1], reason)


def torch_encoder_name(cfg: config.Encoder) -> str:
    """PyTorch's name in embedding identities: device, and worker count when pooled."""
    name = f"torch-{models.device()}"
    return name if cfg.processes == 1 else f"{name}-x{cfg.processes}"


@contextmanager
def _export_folder():
    folder = Path(tempfile.mkdtemp(prefix="embedtune-encoder-"))
    try:
        yield folder / "export"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class PooledModel:
    """A SentenceTransformer whose encode calls spread over ``processes`` workers with
    sentence-transformers' multi-process pool (one per GPU, else CPU workers sharing the
    cores). The pool starts on first use and stops with ``close``."""

    def __init__(self, model, processes: int):
        self.model, self.processes, self._pool = model, processes, None

    def get_embedding_dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def _start(self):
        if self._pool is None:
            import torch

            if torch.cuda.is_available():
                devices = [f"cuda:{i % torch.cuda.device_count()}" for i in range(self.processes)]
            else:
                devices = ["cpu"] * self.processes
                # Workers start from this environment: split the cores, do not oversubscribe.
                threads = max(1, (os.cpu_count() or 1) // self.processes)
                os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            self._pool = self.model.start_multi_process_pool(devices)
        return self._pool

    def encode_query(self, texts, **kwargs):
        return self.model.encode_query(texts, pool=self._start(), **kwargs)

    def encode_document(self, texts, **kwargs):
        return self.model.encode_document(texts, pool=self._start(), **kwargs)

    def encode(self, texts, **kwargs):
        return self.model.encode(texts, pool=self._start(), **kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self.model.stop_multi_process_pool(self._pool)
            self._pool = None


def pooled(model, cfg: config.Encoder):
    """``model`` itself, or with ``processes`` > 1 a PooledModel around it."""
    return model if cfg.processes == 1 else PooledModel(model, cfg.processes)
