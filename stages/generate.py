"""generate: N questions per passage from an OpenAI-compatible endpoint, filtered.

Optional (documents/dvc.yaml.off). Writes pairs that fetch's ``file`` source reads
(columns question, text, chunk_id, document_id) and a metrics file counting what each
filter dropped. Answers are cached per passage outside DVC's outputs (see
embedtune/answer_cache.py), so no passage is paid for twice.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from embedtune import answer_cache, io, llm_client, params, question_filters, question_prompt
from embedtune.errors import StageError
from embedtune.records import ident, raise_problems, read_records, text_problem


def read_passages(path: Path) -> list[dict]:
    """chunk's passages (id, text, document_id), each row checked."""
    problems, out, seen = [], [], set()
    for where, row in read_records(path):
        pid, problem = ident(row.get("id"))
        if problem:
            problems.append(f"{path}: {where}, column 'id': {problem}")
            continue
        if text_problem(row.get("text")):
            problems.append(f"{path}: {where}, column 'text': {text_problem(row.get('text'))}")
            continue
        if pid in seen:
            problems.append(f"{path}: {where}, column 'id': {pid!r} appears twice")
            continue
        seen.add(pid)
        doc, _ = ident(row.get("document_id"))
        out.append({"id": pid, "text": row["text"].strip(), "document_id": doc})
    raise_problems(problems)
    if not out:
        raise StageError(f"{path}: no passages")
    return out


def _encoder(model_dir: Path, common: params.Common):
    """Normalised base-model embeddings, for near-duplicates and the model round-trip."""
    from sentence_transformers import SentenceTransformer

    from embedtune.modeling import device

    model = SentenceTransformer(str(model_dir), device=device(), local_files_only=True)
    model.max_seq_length = common.max_seq_length

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
    p = params.load(args.params)
    params.check_token_limits(p, ("generate.max_question_tokens",))
    g = p.generate
    key = llm_client.api_key(g.api_key_env)  # before anything is read or requested
    template_path = Path(g.prompt)
    try:
        template = template_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StageError(
            f"{template_path}: cannot read the prompt template (params key 'generate.prompt')"
        ) from exc
    question_prompt.check_template(template, str(template_path))
    passages = read_passages(Path(args.passages))
    prompts = {
        ps["id"]: question_prompt.render(template, ps["text"], g.questions_per_passage)
        for ps in passages
    }
    cache = answer_cache.Cache(os.environ.get(answer_cache.CACHE_ENV) or args.cache)
    req = llm_client.Request(
        g.base_url, g.model, g.temperature, g.max_tokens, g.timeout_s, g.max_retries, g.concurrency
    )
    entries, run = llm_client.ask_all(
        prompts, g.questions_per_passage, req, key, cache, not args.no_progress
    )
    print(
        f"generate: {run.passages} passages: {run.cached} from the cache, {run.requests} "
        f"requested ({run.retries} retries, {run.failed} failed); this run's tokens: "
        f"{run.prompt_tokens} prompt, {run.completion_tokens} completion"
    )
    if run.failed:
        raise StageError(
            f"{run.failed} of {run.passages} passages got no answer after "
            f"{g.max_retries} retries (first: {run.failures[0]}); the {len(entries)} answered "
            "are cached: run again to request only the missing ones"
        )
    index = {ps["id"]: i for i, ps in enumerate(passages)}
    cands = [(index[pid], q) for pid in prompts for q in entries[pid]["questions"]]
    from embedtune import chunking

    model_dir = chunking.model_folder(p.common.model)
    counter = chunking.passage_counter(model_dir, p.common.query_prompt)
    needs_model = g.dedup_threshold is not None or g.roundtrip.retriever == "model"
    encode = _encoder(model_dir, p.common) if needs_model else None
    texts = [ps["text"] for ps in passages]
    kept = question_filters.apply(cands, texts, counter, g, encode)
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
    raise SystemExit(io.run_stage(main))
