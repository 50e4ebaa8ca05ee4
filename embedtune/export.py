"""Export a sentence-transformers model to ONNX (float32 and int8) and OpenVINO, and encode
with an export through the same interface as the PyTorch model.

sentence-transformers' own ``backend="onnx"`` / ``"openvino"`` and their export helpers need
optimum-onnx / optimum-intel, which cannot be installed beside the pinned transformers 5.23
(they require transformers < 4.58 and < 5.6). So the transformer is exported here with
``torch.onnx.export(dynamo=True)`` (the TorchScript exporter, ``dynamo=False``, gave wrong
outputs for this model family), fused by onnxruntime's transformer optimizer (checked
against the plain graph), quantized with onnxruntime's own ``quantize_dynamic`` and compiled
for OpenVINO from the plain ONNX graph. The graph returns token embeddings; pooling and
normalisation run outside it, read from the model folder's own sentence-transformers config,
so an export behaves like the folder it came from.

Loading an export for use is one call::

    from embedtune.export import load_encoder
    enc = load_encoder("models/export", "onnx_int8")
    vectors = enc.encode_document(["a passage"], batch_size=32)   # numpy, like SentenceTransformer

Heavy libraries (torch, onnxruntime, openvino, transformers) are imported inside functions.

Longer than the other modules on purpose: the exporter and the encoder that reads its
output share one file layout (FILES, CONFIG, EncoderConfig), so they change together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedtune.errors import StageError

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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: cannot read: {exc}") from exc


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
    modules = _read_json(model_dir / "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    for m, kind in zip(modules, kinds, strict=True):
        if kind not in KNOWN_MODULES:
            raise StageError(
                f"{model_dir / 'modules.json'}: module {m.get('type')!r} is not supported by the "
                f"export (supported: {', '.join(KNOWN_MODULES)})"
            )
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise StageError(
            f"{model_dir / 'modules.json'}: modules {kinds} are not Transformer, Pooling "
            "and optionally Normalize"
        )
    pool_path = model_dir / modules[1]["path"] / "config.json"
    pool_cfg = _read_json(pool_path)
    st_cfg = model_dir / "sentence_bert_config.json"
    lower = bool(_read_json(st_cfg).get("do_lower_case", False)) if st_cfg.is_file() else False
    top = model_dir / "config_sentence_transformers.json"
    top_cfg = _read_json(top) if top.is_file() else {}
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
    return names


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
    plain_out, fused_out = _ort_runner(src, None)(feeds), _ort_runner(dst, None)(feeds)
    if plain_out.shape == fused_out.shape and float(np.abs(plain_out - fused_out).max()) <= 1e-4:
        return True
    shutil.copyfile(src, dst)
    return False


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized at run time), per
    output channel: no calibration data, a quarter of the size."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)


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
    tokenizer.save_pretrained(str(out))
    plain, onnx_path = out / "model_plain.onnx", out / FILES["onnx"]
    names = export_onnx(model, plain, opset)
    sample = tokenizer(["a check that fusing kept the maths", "and a longer second one"] * 2,
                       padding=True, return_tensors="np")  # fmt: skip
    feeds = {n: sample[n].astype(np.int64) for n in names}
    if not optimize_for_onnxruntime(plain, onnx_path, model[0].auto_model.config, feeds):
        print("export: onnxruntime's fused graph differed from the plain one; kept the plain")
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


class ExportedEncoder:
    """An exported model with SentenceTransformer's encode / encode_query / encode_document
    (prompts, batching, length-sorted batches, truncation at max_seq_length, pooling and
    normalisation as the source folder defines them)."""

    def __init__(self, folder: str | Path, fmt: str, threads: int | None = None):
        folder = Path(folder)
        meta = _read_json(folder / CONFIG) if (folder / CONFIG).is_file() else None
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
            _openvino_runner(path, threads) if fmt == "openvino" else _ort_runner(path, threads)
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
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
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
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb


def _ort_runner(path: Path, threads: int | None):
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
