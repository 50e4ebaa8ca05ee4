"""Documents to passages: light loaders and a token-bounded split (the chunk stage's core).

Passages are measured in the base model's own tokens, with the document prompt and the
special tokens counted, so a passage of ``size`` tokens reaches the model uncut when
``size <= common.max_seq_length``. The split itself is semchunk's (recursive on paragraph,
line, sentence and word boundaries), not a hand-written one.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedtune import config
from embedtune.data.model_source import installed_folder
from embedtune.errors import StageError

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")
TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "tokenizer*"]  # enough to count tokens


class BadDocument(Exception):
    """A document that cannot give text: unreadable, empty or encrypted."""


def model_folder(src: config.ModelSource) -> Path:
    """The base model's folder as fetch would copy it (package, local), or for a Hub model
    the pinned revision's tokenizer files in the Hugging Face cache (outside any output)."""
    if src.source in ("package", "local"):
        return installed_folder(src)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(src.name, revision=src.revision, allow_patterns=TOKENIZER_FILES))


def text_counter(model_dir: Path, prompt: str) -> Callable[[str], int]:
    """Tokens the model is fed for one text: ``prompt + text`` with special tokens, counted
    by ``embedtune.data.truncation``'s tokenizer counter."""
    from embedtune.data.truncation import token_counter, tokenizer_counter

    if (model_dir / "modules.json").is_file():
        count = token_counter(model_dir)
    else:  # a bare transformers folder (Hub snapshot of the tokenizer files)
        count = tokenizer_counter(model_dir)
    return lambda text: count([prompt + text])[0]


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        # An owner-password-only PDF opens with the empty user password; others cannot.
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadDocument("encrypted PDF (a password is needed)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except BadDocument:
        raise
    except (PdfReadError, ValueError, OSError, KeyError, TypeError) as exc:
        raise BadDocument(f"unreadable PDF: {exc}") from exc
    except Exception as exc:  # pypdf raises many types on a damaged or encrypted file
        raise BadDocument(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    return "\n\n".join(page.strip() for page in pages)


def _html_text(raw: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    # Blank lines between blocks keep the paragraph boundaries the splitter prefers.
    out, blank = [], False
    for line in lines:
        if line:
            out.append(line)
            blank = False
        elif not blank and out:
            out.append("")
            blank = True
    return "\n".join(out)


def load_text(path: Path) -> str:
    """The text of one document; raises BadDocument with the reason."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        text = _pdf_text(path)
    else:
        try:
            raw = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadDocument(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except OSError as exc:
            raise BadDocument(f"cannot read: {exc.strerror or exc}") from exc
        text = _html_text(raw) if suffix in (".html", ".htm") else raw
    if not text.strip():
        raise BadDocument("no text (empty, or a scanned PDF without a text layer)")
    return text


def find_documents(folder: Path) -> tuple[list[Path], list[str]]:
    """Supported documents under ``folder`` in a stable order, and the other files' paths."""
    if not folder.is_dir():
        raise StageError(f"{folder}: documents folder not found (params key 'chunk.folder')")
    files = sorted(
        path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")
    )
    docs = [path for path in files if path.suffix.lower() in SUFFIXES]
    other = [
        path.relative_to(folder).as_posix() for path in files if path.suffix.lower() not in SUFFIXES
    ]
    return docs, other


@dataclass
class Chunked:
    passages: list[dict]
    skipped: list[dict]  # {"document": path, "reason": ...}
    documents: int


def chunk_documents(
    folder: Path,
    count: Callable[[str], int],
    size: int,
    overlap: int,
    on_bad_document: str,
) -> Chunked:
    """Split every document of ``folder`` into passages of at most ``size`` tokens.

    Ids are ``<document path>:<start offset>`` (characters into the extracted text): stable
    while the document's text before that point does not change, and readable in a diff.
    """
    import semchunk

    docs, _ = find_documents(folder)
    if not docs:
        raise StageError(f"{folder}: no {', '.join(SUFFIXES)} documents found")
    chunker = semchunk.chunkerify(count, chunk_size=size)
    passages, skipped = [], []
    for path in docs:
        doc_id = path.relative_to(folder).as_posix()
        try:
            text = load_text(path)
        except BadDocument as exc:
            if on_bad_document == "fail":
                raise StageError(
                    f"{path}: {exc} (set chunk.on_bad_document: skip to leave it out)"
                ) from exc
            log.warning("skipped %s: %s", path, exc)
            skipped.append({"document": doc_id, "reason": str(exc)})
            continue
        chunks, spans = chunker(text, offsets=True, overlap=overlap or None)
        for chunk, (start, end) in zip(chunks, spans, strict=True):
            passages.append(
                {
                    "id": f"{doc_id}:{start}",
                    "text": chunk,
                    "document_id": doc_id,
                    "start": start,
                    "end": end,
                    "tokens": count(chunk),
                }
            )
    if not passages:
        raise StageError(f"{folder}: no document gave any text ({len(skipped)} skipped)")
    return Chunked(passages, skipped, len(docs) - len(skipped))


def summary(result: Chunked, size: int, overlap: int, other_files: list[str]) -> dict:
    """Counts and token lengths for the log and data/chunk/summary.json."""
    lengths = [passage["tokens"] for passage in result.passages]
    return {
        "documents": result.documents,
        "documents_skipped": result.skipped,
        "other_files_ignored": other_files,
        "passages": len(lengths),
        "size": size,
        "overlap": overlap,
        "tokens_min": min(lengths),
        "tokens_median": statistics.median(lengths),
        "tokens_max": max(lengths),
        "passages_over_size": sum(n > size for n in lengths),
    }
