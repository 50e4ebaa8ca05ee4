"""chunk: documents (txt, md, html, pdf) to passages bounded in the base model's tokens."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml

from embedtune.documents import chunking
from embedtune.errors import StageError
from stages import chunk as chunk_stage
from tests.pipeline import ROOT
from tests.tiny import WORDS


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
    import random

    rng = random.Random(seed)
    return " ".join(" ".join(rng.sample(WORDS, 8)).capitalize() + "." for _ in range(n_sentences))


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
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


@pytest.fixture
def count(tiny_model_dir):
    return chunking.text_counter(tiny_model_dir, "")


def test_the_counter_adds_the_prompt_and_reads_a_bare_tokenizer_folder(tiny_model_dir):
    # tests/tiny.py saves the Hugging Face model and tokenizer in hf/ beside the
    # sentence-transformers folder: the shape of a Hub snapshot without modules.json.
    bare = tiny_model_dir.parent / "hf"
    assert not (bare / "modules.json").exists()
    plain = chunking.text_counter(tiny_model_dir, "")
    prompted = chunking.text_counter(tiny_model_dir, "court court ")
    assert plain("contract damages") == 4  # [CLS] contract damages [SEP]
    assert prompted("contract damages") == 6
    assert chunking.text_counter(bare, "court court ")("contract damages") == 6


def test_a_folder_without_a_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(StageError, match="cannot load the model's tokenizer"):
        chunking.text_counter(tmp_path, "")


def test_every_document_type_is_read_and_split_within_size(docs, count):
    out = chunking.chunk_documents(docs, count, size=40, overlap=0, on_bad_document="fail")
    by_doc = {passage["document_id"] for passage in out.passages}
    assert by_doc == {"a.txt", "sub/b.md", "c.html", "d.pdf"}
    assert out.documents == 4 and out.skipped == []
    assert max(passage["tokens"] for passage in out.passages) <= 40
    assert all(passage["tokens"] == count(passage["text"]) for passage in out.passages)
    html = " ".join(
        passage["text"] for passage in out.passages if passage["document_id"] == "c.html"
    )
    assert "Ruling" in html and "var x" not in html and "p{}" not in html
    pdf = " ".join(passage["text"] for passage in out.passages if passage["document_id"] == "d.pdf")
    assert prose(1, 0).split()[0] in pdf
    # Offsets point into the extracted text; ids are path + start offset.
    text = chunking.load_text(docs / "a.txt")
    for passage in (passage for passage in out.passages if passage["document_id"] == "a.txt"):
        assert text[passage["start"] : passage["end"]] == passage["text"]
        assert passage["id"] == f"a.txt:{passage['start']}"
    assert chunking.find_documents(docs)[1] == ["notes.csv"]


def test_ids_are_stable_when_a_document_grows_at_the_end(docs, count):
    first = chunking.chunk_documents(docs, count, 40, 0, "fail").passages
    with open(docs / "a.txt", "a") as fh:
        fh.write("\n\n" + prose(10, 9))
    again = chunking.chunk_documents(docs, count, 40, 0, "fail").passages
    old = {passage["id"]: passage["text"] for passage in first if passage["document_id"] == "a.txt"}
    new = {passage["id"]: passage["text"] for passage in again if passage["document_id"] == "a.txt"}
    assert len(new) > len(old)
    last = max(old, key=lambda i: int(i.split(":")[1]))
    assert all(new[i] == t for i, t in old.items() if i != last)


def test_overlap_repeats_text_between_neighbours(docs, count):
    plain = chunking.chunk_documents(docs, count, 40, 0, "fail").passages
    over = chunking.chunk_documents(docs, count, 40, 10, "fail").passages
    a = [passage for passage in over if passage["document_id"] == "a.txt"]
    assert any(nxt["start"] < prev["end"] for prev, nxt in zip(a, a[1:], strict=False))
    assert all(
        passage["start"] >= q["end"]
        for q, passage in zip(plain, plain[1:], strict=False)
        if passage["document_id"] == q["document_id"]
    )
    assert max(passage["tokens"] for passage in over) <= 40


@pytest.mark.parametrize("kind", ["empty", "encrypted", "broken_pdf", "not_utf8"])
def test_a_bad_document_fails_or_is_skipped_by_path(docs, count, kind, caplog):
    bad = docs / ("bad.pdf" if "pdf" in kind or kind == "encrypted" else "bad.txt")
    if kind == "empty":
        bad.write_text("  \n\n ")
    elif kind == "not_utf8":
        bad.write_bytes(b"caf\xe9 au lait")
    elif kind == "broken_pdf":
        bad.write_bytes(b"%PDF-1.4\n this is not a pdf")
    else:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(str(docs / "d.pdf")))
        writer.encrypt(user_password="secret", owner_password="owner")
        with open(bad, "wb") as fh:
            writer.write(fh)
    with pytest.raises(StageError, match=str(bad)) as err:
        chunking.chunk_documents(docs, count, 40, 0, "fail")
    assert "chunk.on_bad_document" in str(err.value)
    if kind == "encrypted":
        assert "encrypted" in str(err.value)
    out = chunking.chunk_documents(docs, count, 40, 0, "skip")
    assert [s["document"] for s in out.skipped] == [bad.name]
    ours = [r for r in caplog.records if r.name.startswith("embedtune")]  # not pypdf's
    assert [(r.levelno, r.getMessage()) for r in ours] == [
        (logging.WARNING, f"skipped {bad}: {out.skipped[0]['reason']}")
    ]
    assert out.documents == 4 and bad.name not in {
        passage["document_id"] for passage in out.passages
    }


def _params(tmp_path, model_dir, folder, **chunk) -> str:
    conf = yaml.safe_load((ROOT / "params.yaml").read_text())
    conf["common"].update(max_seq_length=64)
    conf["common"]["model"].update(source="local", package=None, path=str(model_dir))
    conf["chunk"].update({"folder": str(folder), "size": 48, "overlap": 8, **chunk})
    conf["generate"].update(max_question_tokens=32)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def test_stage_writes_passages_and_summary(tmp_path, docs, tiny_model_dir, capsys):
    out = tmp_path / "out"
    chunk_stage.main(["--params", _params(tmp_path, tiny_model_dir, docs), "--out", str(out)])
    rows = [json.loads(x) for x in (out / "passages.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passages"] == len(rows) and summary["documents"] == 4
    assert summary["tokens_max"] <= 48 and summary["other_files_ignored"] == ["notes.csv"]
    assert {"id", "text", "document_id", "start", "end", "tokens"} <= set(rows[0])
    assert "tokens per passage min" in capsys.readouterr().out


def test_size_above_max_seq_length_is_an_error(tmp_path, docs, tiny_model_dir):
    params = _params(tmp_path, tiny_model_dir, docs, size=65, overlap=0)
    with pytest.raises(StageError, match="'chunk.size'.*max_seq_length"):
        chunk_stage.main(["--params", params, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_optional_stage_modules_import_no_heavy_library():
    """As tests/test_io.py checks for the root pipeline's stages."""
    from tests.test_io import HEAVY

    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[2:]: importlib.import_module(name)\n"
        "print(' '.join(h for h in sys.argv[1].split(',') if h in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, ",".join(HEAVY), "stages.chunk", "stages.generate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == []


def test_optional_pipeline_declares_every_project_file_it_imports():
    from tests.test_dvc_deps import missing_deps, unneeded_deps

    pipeline = yaml.safe_load((ROOT / "documents" / "dvc.yaml.off").read_text())
    assert set(pipeline["stages"]) == {"chunk", "generate"}
    assert missing_deps(pipeline, ROOT) == {}
    assert unneeded_deps(pipeline, ROOT) == {}
    assert all(s["wdir"] == ".." for s in pipeline["stages"].values())
