"""Write a sentence-transformers model as ONNX (float32, int8) and OpenVINO IR.

sentence-transformers' own ``backend="onnx"`` / ``"openvino"`` and their export helpers need
optimum-onnx / optimum-intel, which cannot be installed beside the pinned transformers 5.23
(they require transformers < 4.58 and < 5.6). So the transformer is exported here with
``torch.onnx.export(dynamo=True)`` (the TorchScript exporter, ``dynamo=False``, gave wrong
outputs for this model family), fused by onnxruntime's transformer optimizer (checked
against the plain graph), quantized with onnxruntime's own ``quantize_dynamic`` and compiled
for OpenVINO from the plain ONNX graph. The graph returns token embeddings; pooling and
normalisation run outside it (``embedtune.export.runtime``), read from the model folder's
own sentence-transformers config, so an export behaves like the folder it came from.

Heavy libraries (torch, onnxruntime, openvino, transformers) are imported inside functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from embedtune.errors import StageError
from embedtune.export.layout import (
    CONFIG,
    FILES,
    FORMATS,
    INPUT_NAMES,
    EncoderConfig,
    read_encoder_config,
)
from embedtune.export.runtime import decline_openvino_telemetry, ort_runner

log = logging.getLogger(__name__)


def _token_embedding_module(hf_model):
    """The transformer as a module of positional tensors returning token embeddings."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return self.model(**kw).last_hidden_state

    return TokenEmbeddings(hf_model).eval()


def export_onnx(model, path: Path, opset: int) -> list[str]:
    """Write the transformer of a loaded SentenceTransformer as an ONNX graph (dynamic batch
    and sequence length) returning token embeddings; return its input names."""
    import torch

    transformer = model[0]
    tokenizer = transformer.tokenizer
    names = [n for n in INPUT_NAMES if n in tokenizer.model_input_names]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise StageError(f"tokenizer inputs {tokenizer.model_input_names}: need input_ids and mask")
    sample = tokenizer(
        ["an example sentence to trace", "a second, somewhat longer example for the export"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[n] for n in names)
    dynamic = tuple({0: "batch", 1: "sequence"} for _ in names)
    auto = transformer.auto_model
    attention = getattr(auto.config, "_attn_implementation", None)
    # Traced through SDPA, the dynamo exporter writes a decomposed attention that onnxruntime
    # ran slower than the explicit eager one (1.35x against 1.49x PyTorch's throughput, same
    # run, MiniLM, 2 CPU threads): same maths, so the graph is traced from eager attention.
    if attention not in (None, "eager"):
        auto.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            torch.onnx.export(
                _token_embedding_module(auto),
                args,
                str(path),
                dynamo=True,  # the TorchScript exporter gave wrong embeddings here
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_shapes=dynamic,
                opset_version=opset,
                external_data=False,  # one self-contained file (fine below ONNX's 2 GB limit)
                verbose=False,
            )
    finally:
        if attention not in (None, "eager"):
            auto.set_attn_implementation(attention)
    strip_stack_traces(path)
    return names


STACK_TRACE = "pkg.torch.onnx.stack_trace"


def strip_stack_traces(path: Path) -> None:
    """Drop the Python stack trace the dynamo exporter stores on every node: it holds the
    absolute paths of the checkout and the venv, so two clones of one commit wrote different
    graphs (and shipped those paths). Node names, scopes and the maths stay as exported."""
    import onnx

    graph = onnx.load(str(path))
    nodes = [*graph.graph.node, *(n for f in graph.functions for n in f.node)]
    for node in nodes:
        kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
        if len(kept) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
    onnx.save(graph, str(path))


def optimize_for_onnxruntime(src: Path, dst: Path, config, feeds: dict) -> bool:
    """onnxruntime's transformer optimizer on the graph (LayerNorm + residual and bias + GELU
    fused into its own kernels), at its portable level 1 (higher levels bake in this CPU's
    instructions). The fused graph is kept only if it gives the same token embeddings as
    the plain one on ``feeds`` (within 1e-4); else the plain graph is copied. Returns whether
    the fused one was kept. OpenVINO cannot read these onnxruntime-only operators, so it is
    compiled from the plain graph."""
    import shutil

    from onnxruntime.transformers import optimizer

    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    width = int(getattr(config, "hidden_size", 0) or 0)
    fused = optimizer.optimize_model(
        str(src), model_type="bert", num_heads=heads, hidden_size=width, opt_level=1
    )
    fused.save_model_to_file(str(dst))
    plain_out, fused_out = ort_runner(src, None)(feeds), ort_runner(dst, None)(feeds)
    if plain_out.shape == fused_out.shape and float(np.abs(plain_out - fused_out).max()) <= 1e-4:
        return True
    shutil.copyfile(src, dst)
    return False


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized at run time), per
    output channel: no calibration data, a quarter of the size."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)


def compile_openvino(src: Path, dst: Path) -> None:
    """Convert the ONNX graph to OpenVINO IR (model.xml + model.bin), weights kept float32."""
    decline_openvino_telemetry()
    try:
        import openvino as ov
    except ImportError as exc:
        raise StageError(
            "format 'openvino' needs the openvino package (pip install openvino), or drop it "
            "from params key 'export.formats'"
        ) from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    # save_model compresses weights to float16 by default: that would change the embeddings.
    ov.save_model(ov.convert_model(str(src)), str(dst), compress_to_fp16=False)


def _fresh_tokenizer(model_dir: str | Path):
    """The model folder's tokenizer as loaded: the live one keeps the truncation and padding
    of its last call in its saved state, so its files would differ with what ran before."""
    from transformers import AutoTokenizer

    from embedtune.models import transformer_folder

    folder = transformer_folder(Path(model_dir))
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def export_model(model, model_dir: str | Path, out: str | Path, formats: Sequence[str], opset: int):
    """Write every requested format of a loaded SentenceTransformer (read from ``model_dir``)
    into ``out``, with the tokenizer files and the encoder config. Returns the config."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StageError(f"export formats {list(formats)}: want some of {', '.join(FORMATS)}")
    # The ST model's own limit (the stage sets common.max_seq_length), else the tokenizer's.
    cfg = read_encoder_config(
        model_dir, model.max_seq_length or model[0].tokenizer.model_max_length
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = model[0].tokenizer
    _fresh_tokenizer(model_dir).save_pretrained(str(out))
    plain, onnx_path = out / "model_plain.onnx", out / FILES["onnx"]
    names = export_onnx(model, plain, opset)
    sample = tokenizer(["a check that fusing kept the maths", "and a longer second one"] * 2,
                       padding=True, return_tensors="np")  # fmt: skip
    feeds = {n: sample[n].astype(np.int64) for n in names}
    if not optimize_for_onnxruntime(plain, onnx_path, model[0].auto_model.config, feeds):
        log.warning("onnxruntime's fused graph differed from the plain one; kept the plain")
    if "onnx_int8" in formats:
        quantize_int8(onnx_path, out / FILES["onnx_int8"])
    if "openvino" in formats:
        compile_openvino(plain, out / FILES["openvino"])
    plain.unlink()
    if "onnx" not in formats:
        onnx_path.unlink()
    cfg = EncoderConfig(**{**asdict(cfg), "input_names": names})
    meta = {**asdict(cfg), "formats": {f: FILES[f] for f in formats}}
    (out / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return cfg
