"""chunking: documents (txt, md, html, pdf) read and split into passages bounded in the base
model's tokens. Pins the token counter (the model's prompt counted, a bare Hugging Face
tokenizer folder read, a folder without one a clear error), that every document type is
read with scripts and styles left out, that no passage exceeds the size, that offsets point
into the extracted text and ids (path + start offset) stay stable when a document grows at
its end, that overlap repeats text between neighbours, and that an empty, encrypted, broken
or non-UTF-8 document fails the run or, with ``skip``, is skipped by path with one warning.
"""

from __future__ import annotations

import logging

import pytest

from embedtune.documents import chunking
from embedtune.errors import StageError
from tests.tiny import prose


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
