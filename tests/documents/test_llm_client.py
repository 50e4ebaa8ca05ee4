"""llm_client: asking an OpenAI-compatible server for every prompt, against the real
`transformers serve` on a tiny Llama (tests/llm_server.py; its answers are gibberish). Pins
that each prompt is one request and none fails, that prompt and completion tokens are
counted, that every answer is recorded as ok or malformed and cached so that asking again
makes no request and returns the same entries, and that the questions parsed from those
answers go through the filters with each one either kept or counted as dropped.
"""

from __future__ import annotations

import pytest

from embedtune.documents import answer_cache, llm_client, question_filters, question_prompt
from tests.llm_server import TransformersServer, build_tiny_llama
from tests.pipeline import ROOT
from tests.tiny import gen_params, passages_file


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve")
    model = build_tiny_llama(home / "llama")
    server = TransformersServer(model, home)
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def test_transformers_serve_gibberish_is_counted_and_cached(served, tmp_path):
    rows = passages_file(tmp_path / "p.jsonl", n=3)
    template = (ROOT / "prompts" / "generate.txt").read_text()
    prompts = {r["id"]: question_prompt.render(template, r["text"], 2) for r in rows}
    req = llm_client.Request(served.base_url, served.model, 0.7, 24, 60, 1, 2)
    cache = answer_cache.Cache(tmp_path / "cache")
    before = served.requests()
    entries, run = llm_client.ask_all(prompts, 2, req, llm_client.NO_KEY, cache, False)
    assert served.requests() - before == 3 and run.requests == 3 and run.failed == 0
    assert run.completion_tokens > 0 and run.prompt_tokens > 0
    assert {e["status"] for e in entries.values()} <= {"ok", "malformed"}
    again, rerun = llm_client.ask_all(prompts, 2, req, llm_client.NO_KEY, cache, False)
    assert served.requests() - before == 3 and rerun.cached == 3 and again == entries
    cands = [(i, q) for i, r in enumerate(rows) for q in entries[r["id"]]["questions"]]
    out = question_filters.apply(cands, [r["text"] for r in rows], len, gen_params())
    assert sum(out.dropped.values()) + len(out.kept) == len(cands)
