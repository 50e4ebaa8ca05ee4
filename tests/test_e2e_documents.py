"""End to end: documents -> chunk -> generate -> fetch -> ... -> compare in the real
`dvc repro`, against the loopback LLM server; reruns pay only for new passages."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from tests.llm_server import LoopbackLLM
from tests.pipeline import make_project, run, tiny_params
from tests.tiny import WORDS, write_pdf

pytestmark = pytest.mark.slow
KEY_ENV = "EMBEDTUNE_TEST_LLM_KEY"
SECRET = "sk-e2e-not-a-real-key-7373"


def sentences(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.sample(WORDS, 9)).capitalize() + "." for _ in range(n)]


def write_documents(folder, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ruling.txt").write_text("\n\n".join(" ".join(sentences(rng, 4)) for _ in range(5)))
    (folder / "notes.md").write_text(
        "# Notes\n\n" + "\n\n".join(" ".join(sentences(rng, 3)) for _ in range(4))
    )
    paragraphs = "".join(f"<p>{' '.join(sentences(rng, 3))}</p>" for _ in range(4))
    (folder / "opinion.html").write_text(f"<html><body><h1>Opinion</h1>{paragraphs}</body></html>")
    write_pdf(folder / "brief.pdf", sentences(rng, 12))


def documents_params(model_dir, base_url: str) -> dict:
    p = tiny_params(model_dir, "unused")
    p["fetch"].update(
        source="file",
        path="data/generate/pairs.jsonl",
        columns={
            "anchor": "question",
            "positive": "text",
            "chunk_id": "chunk_id",
            "document_id": "document_id",
        },
    )
    p["fetch"]["corpus"].update(
        source="file",
        path="data/chunk/passages.jsonl",
        columns={"id": "id", "text": "text", "document_id": "document_id"},
    )
    p["chunk"].update(folder="documents/input", size=40, overlap=0)
    p["generate"].update(
        base_url=base_url,
        model="loopback",
        api_key_env=KEY_ENV,
        concurrency=2,
        max_question_tokens=32,
        roundtrip={"retriever": "bm25", "top_k": 5, "min_score": 0.0},
    )
    return p


def passages_of(project, document: str | None = None) -> list[dict]:
    rows = [json.loads(x) for x in (project / "data/chunk/passages.jsonl").read_text().splitlines()]
    return [r for r in rows if document is None or r["document_id"] == document]


def test_documents_to_compare_paid_for_once(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.delenv("EMBEDTUNE_GENERATE_CACHE", raising=False)
    with LoopbackLLM(3) as srv:
        project = make_project(tmp_path / "project", documents_params(tiny_model_dir, srv.base_url))
        shutil.copy(project / "documents/dvc.yaml.off", project / "documents/dvc.yaml")
        write_documents(project / "documents/input")
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-q", "-m", "documents pipeline on"], project)

        first = run(["dvc", "repro"], project).stdout
        for stage in (
            "documents/dvc.yaml:chunk",
            "documents/dvc.yaml:generate",
            "fetch",
            "compare",
        ):
            assert f"Running stage '{stage}'" in first, first
        assert first.index("dvc.yaml:generate'") < first.index("Running stage 'fetch'")
        passages = passages_of(project)
        assert {p["document_id"] for p in passages} == {
            "ruling.txt",
            "notes.md",
            "opinion.html",
            "brief.pdf",
        }
        assert srv.requests == len(passages)
        metrics = json.loads((project / "metrics/generate.json").read_text())
        assert metrics["pairs"] > 0 and metrics["passages"] == len(passages)
        source = json.loads((project / "data/fetch/source.json").read_text())
        assert source["pairs"] == metrics["pairs"]
        assert source["corpus"]["passages"] == len(passages)
        assert source["truncation"]["passages_cut"] == 0  # chunk.size <= max_seq_length
        assert (project / "metrics/compare.json").is_file()
        # The pairs are git-tracked (cache: false), so a pull request shows them in its diff.
        ignored = run(["git", "check-ignore", "-q", "data/generate/pairs.jsonl"], project, False)
        assert ignored.returncode == 1

        print(f"{len(passages)} passages, {srv.requests} requests, generate metrics: {metrics}")
        dag = run(["dvc", "dag", "--dot"], project).stdout
        assert '"documents/dvc.yaml:generate" -> "fetch"' in dag, dag

        again = run(["dvc", "repro"], project).stdout
        assert "Running stage" not in again and srv.requests == len(passages)
        assert "up to date" in run(["dvc", "status"], project).stdout

        rng = random.Random(99)
        (project / "documents/input/added.txt").write_text(" ".join(sentences(rng, 8)))
        before = srv.requests
        # The optional pipeline alone: enough to show what the new document costs.
        added = run(["dvc", "repro", "documents/dvc.yaml"], project).stdout
        assert "Running stage 'documents/dvc.yaml:generate'" in added
        new = passages_of(project, "added.txt")
        assert new and srv.requests - before == len(new)
        assert len(passages_of(project)) == len(passages) + len(new)

    # The key is in no file of the project: outputs, locks, metrics, DVC's cache.
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path
