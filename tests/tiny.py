"""Tiny models and toy data built inside the tests: nothing is downloaded."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from tests.pipeline import ROOT

WORDS = (
    "court contract model data training copyright privacy consent vendor algorithm damages "
    "appeal motion evidence expert liability negligence statute claim plaintiff defendant "
    "license weights secret injunction sanction citation brief hearing jury verdict ruling "
    "camera face image voice video platform content policy hiring applicant score tenant "
    "screening report accuracy record patent inventor sentence risk bias audit notice fee"
).split()


def toy_rows(n_chunks: int = 30, per_chunk: int = 3, seed: int = 0) -> list[dict]:
    """Reference-shaped rows: each chunk a bag of words, questions drawn from its words."""
    rng = random.Random(seed)
    rows = []
    for c in range(n_chunks):
        words = rng.sample(WORDS, 12)
        text = " ".join(words) + f" chunk{c}"
        for q in range(per_chunk):
            question = " ".join(rng.sample(words, 4)) + f" q{c}x{q}?"
            rows.append(
                {
                    "question": question,
                    "text": text,
                    "global_chunk_id": c,
                    "case_name": f"Case {c % 5}",
                    "court": "Toy Court",
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with a word-level tokenizer, saved as a
    sentence-transformers folder (mean pooling + normalisation, 32 dims)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", *sorted(set(WORDS))]
    vocab += [f"chunk{i}" for i in range(200)]
    # transformers 5 ignores vocab_file for fast tokenizers; pass the vocabulary itself.
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(hf)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(hf, safe_serialization=True)
    transformer = Transformer(str(hf), max_seq_length=64)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    out = folder / "model"
    model.save(str(out))
    return out


def toy_corpus(rows: list[dict], extra: int, seed: int = 1) -> list[dict]:
    """A knowledge base for ``toy_rows``: its chunks plus ``extra`` passages nobody asked
    about, on the same vocabulary and spread over the same cases (ids continue after the
    labelled ones)."""
    rng = random.Random(seed)
    chunks = {r["global_chunk_id"]: r for r in rows}
    out = [
        {"global_chunk_id": c, "text": r["text"], "case_name": r["case_name"]}
        for c, r in sorted(chunks.items())
    ]
    first = max(chunks) + 1
    for c in range(first, first + extra):
        text = " ".join(rng.sample(WORDS, 12)) + f" chunk{c}"
        out.append({"global_chunk_id": c, "text": text, "case_name": f"Case {c % 5}"})
    return out


# Export tests: the tiny model in every pooling the export reads, and the tolerances.
# Float32 exports: the same arithmetic up to operator order (measured ~1e-7 here).
EXACT_TOL = 1e-5
# Dynamic int8 quantizes weights and activations: close, not equal (measured 2.4e-3 and
# cosine 0.99998 on the tiny model; 2.8e-2 and cosine 0.988 on MiniLM).
INT8_MAX_ABS = 0.02
INT8_MIN_COSINE = 0.999

QUERIES = ["court contract damages?", "privacy consent vendor", "appeal"]
DOCS = [" ".join(toy_rows()[i]["text"] for i in range(3)), "jury verdict ruling chunk7", "fee"]
QUERY_PROMPT, DOC_PROMPT = "claim notice ", "record report "  # words the tiny vocab knows


def tiny_st_variant(
    folder: Path, pooling: str = "mean", normalize: bool = True, base: Path | None = None
) -> Path:
    """The tests' tiny model re-saved with another pooling / without Normalize, and with
    default prompts, so that every option the encoder reads is exercised. ``base``: an
    already built tiny model (the session's ``tiny_model_dir``) instead of building one."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    source = SentenceTransformer(str(base or build_tiny_model(folder)), device="cpu")
    modules = [source[0], Pooling(source[0].get_embedding_dimension(), pooling)]
    modules += [Normalize()] if normalize else []
    model = SentenceTransformer(modules=modules, device="cpu")
    model.prompts = {"query": QUERY_PROMPT, "document": DOC_PROMPT}
    out = folder / f"st_{pooling}_{int(normalize)}"
    model.save(str(out))
    return out


def load_st(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def max_diff(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# Reporting tests: metrics files as baseline and evaluate write them, and charts' bytes.
PNG = b"\x89PNG\r\n\x1a\n"  # the signature every chart file starts with


def toy_metrics(value: float, dims=(64, 32)) -> dict:
    """Every retrieval metric at every dimension, all equal to ``value``."""
    from embedtune.metrics import METRIC_NAMES

    return {f"dim_{d}_{m}": value for d in dims for m in METRIC_NAMES}


# Documents tests: a folder of every document type chunk reads, passages as chunk writes
# them, and generate's parameters.


def write_pdf(path, lines: list[str]) -> None:
    """A one-page PDF with a real text layer, written by hand (Helvetica, no images)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 11 Tf 72 740 Td 14 TL " + " ".join(f"({esc(x)}) Tj T*" for x in lines)
    content += " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(out)


def prose(n_sentences: int, seed: int) -> str:
    """Sentences of the tiny model's words, so its tokenizer counts real tokens."""
    rng = random.Random(seed)
    return " ".join(" ".join(rng.sample(WORDS, 8)).capitalize() + "." for _ in range(n_sentences))


def toy_documents(folder: Path) -> Path:
    """One document of each type chunk reads (txt, md in a subfolder, html with a script and
    a style, pdf) and one file it ignores (notes.csv)."""
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(prose(30, 1) + "\n\n" + prose(30, 2))
    (folder / "sub" / "b.md").write_text("# Heading\n\n" + prose(12, 3))
    (folder / "c.html").write_text(
        "<html><head><title>t</title><style>p{}</style></head><body><script>var x=1;</script>"
        f"<h1>Ruling</h1><p>{prose(6, 4)}</p><p>{prose(6, 5)}</p></body></html>"
    )
    write_pdf(folder / "d.pdf", [prose(1, i) for i in range(8)])
    (folder / "notes.csv").write_text("x,y\n")
    return folder


def passages_file(path, n: int = 8, seed: int = 0):
    """``n`` passages as chunk writes them (3 documents), to ``path``; returns the rows."""
    rng = random.Random(seed)
    rows = [
        {
            "id": f"doc{i % 3}.txt:{i * 100}",
            "text": " ".join(rng.sample(WORDS, 16)),
            "document_id": f"doc{i % 3}.txt",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def gen_params(**changes):
    """The default generate section with ``changes``; ``roundtrip={...}`` edits its
    round-trip subsection."""
    from embedtune import config

    defaults = config.load(ROOT / "params.yaml").generate

    rt = changes.pop("roundtrip", {})
    return config.replace(defaults, roundtrip=config.replace(defaults.roundtrip, **rt), **changes)
