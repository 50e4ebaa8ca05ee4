"""generate: N questions per passage from an OpenAI-compatible endpoint, filtered.

Optional (documents/dvc.yaml.off). Writes pairs that fetch's ``file`` source reads
(columns question, text, chunk_id, document_id) and a metrics file counting what each
filter dropped. Answers are cached per passage outside DVC's outputs (see
embedtune/documents/answer_cache.py), so no passage is paid for twice.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from embedtune import cli, config, io
from embedtune.data.records import Cells, checked_rows, ident, raise_problems, read_records
from embedtune.documents import answer_cache, llm_client, question_filters, question_prompt
from embedtune.errors import StageError
from embedtune.models import load_model

# Checked in this order: a passage is named by its id first.
PASSAGE_CELLS: Cells = {"id": ("id", "id"), "text": ("text", "text")}


def read_passages(path: Path) -> list[dict]:
    """chunk's passages (id, text, document_id), each row checked."""
    problems, out, seen = [], [], set()
    for where, row, cell in checked_rows(read_records(path), PASSAGE_CELLS, str(path), problems):
        if cell["id"] in seen:
            problems.append(f"{path}: {where}, column 'id': {cell['id']!r} appears twice")
            continue
        seen.add(cell["id"])
        document, _ = ident(row.get("document_id"))  # optional: None when absent or unusable
        out.append({"id": cell["id"], "text": cell["text"], "document_id": document})
    raise_problems(problems)
    if not out:
        raise StageError(f"{path}: no passages")
    return out


def _encoder(model_dir: Path, common: config.Common):
    """Normalised base-model embeddings, for near-duplicates and the model round-trip."""
    model = load_model(model_dir, common)

    def encode(texts, document: bool):
        prompt = common.document_prompt if document else common.query_prompt
        return model.encode(
            [prompt + t for t in texts],
            convert_to_tensor=True,
            normalize_embeddings=True,
            show_progress_bar=len(texts) > 1000,
        )

    return encode


def totals(entries: dict[str, dict]) -> dict[str, int]:
    """What the whole set cost and how the model answered, from the cache entries: the same
    figures however many runs it took to collect them."""
    status = [e["status"] for e in entries.values()]
    return {
        "llm_prompt_tokens": sum(e.get("prompt_tokens", 0) for e in entries.values()),
        "llm_completion_tokens": sum(e.get("completion_tokens", 0) for e in entries.values()),
        "answers_malformed": status.count("malformed"),
        "answers_refused": status.count("refused"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--passages", required=True, help="chunk's passages.jsonl")
    ap.add_argument("--out", required=True, help="pairs JSONL file")
    ap.add_argument("--metrics", required=True, help="metrics JSON file")
    ap.add_argument(
        "--cache",
        required=True,
        help=f"per-passage answer cache (outside DVC's outs; ${answer_cache.CACHE_ENV} overrides)",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    config.check_token_limits(conf, ("generate.max_question_tokens",))
    cfg = conf.generate
    key = llm_client.api_key(cfg.api_key_env)  # before anything is read or requested
    template_path = Path(cfg.prompt)
    try:
        template = template_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StageError(
            f"{template_path}: cannot read the prompt template (params key 'generate.prompt')"
        ) from exc
    question_prompt.check_template(template, str(template_path))
    passages = read_passages(Path(args.passages))
    prompts = {
        passage["id"]: question_prompt.render(template, passage["text"], cfg.questions_per_passage)
        for passage in passages
    }
    cache = answer_cache.Cache(os.environ.get(answer_cache.CACHE_ENV) or args.cache)
    req = llm_client.Request(
        cfg.base_url,
        cfg.model,
        cfg.temperature,
        cfg.max_tokens,
        cfg.timeout_s,
        cfg.max_retries,
        cfg.concurrency,
    )
    entries, run = llm_client.ask_all(
        prompts, cfg.questions_per_passage, req, key, cache, not args.no_progress
    )
    print(
        f"generate: {run.passages} passages: {run.cached} from the cache, {run.requests} "
        f"requested ({run.retries} retries, {run.failed} failed); this run's tokens: "
        f"{run.prompt_tokens} prompt, {run.completion_tokens} completion"
    )
    if run.failed:
        raise StageError(
            f"{run.failed} of {run.passages} passages got no answer after "
            f"{cfg.max_retries} retries (first: {run.failures[0]}); the {len(entries)} answered "
            "are cached: run again to request only the missing ones"
        )
    index = {passage["id"]: i for i, passage in enumerate(passages)}
    cands = [(index[pid], q) for pid in prompts for q in entries[pid]["questions"]]
    from embedtune.documents import chunking

    model_dir = chunking.model_folder(conf.common.model)
    counter = chunking.text_counter(model_dir, conf.common.query_prompt)
    needs_model = cfg.dedup_threshold is not None or cfg.roundtrip.retriever == "model"
    encode = _encoder(model_dir, conf.common) if needs_model else None
    texts = [passage["text"] for passage in passages]
    kept = question_filters.apply(cands, texts, counter, cfg, encode)
    pairs = [
        {
            "question": q,
            "text": passages[i]["text"],
            "chunk_id": passages[i]["id"],
            "document_id": passages[i]["document_id"],
        }
        for i, q in kept.kept
    ]
    metrics = {
        "passages": len(passages),
        "questions_generated": len(cands),
        **{f"dropped_{name}": n for name, n in kept.dropped.items()},
        "pairs": len(pairs),
        "passages_with_pairs": len({i for i, _ in kept.kept}),
        **totals(entries),
    }
    print(
        f"generate: {len(cands)} questions, kept {len(pairs)} ("
        + ", ".join(f"{n} {name}" for name, n in kept.dropped.items())
        + f" dropped); answers malformed {metrics['answers_malformed']}, refused "
        f"{metrics['answers_refused']}"
    )
    if not pairs:
        raise StageError(
            f"no question survived the filters ({metrics}); read the answers in the cache "
            f"({cache.folder}) and the prompt template {template_path}"
        )
    with io.atomic_path(args.out) as tmp:
        io.write_jsonl(tmp, pairs)
    io.write_json(args.metrics, metrics)
    print(f"generate: {len(pairs)} pairs -> {args.out}, metrics -> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
