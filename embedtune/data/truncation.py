"""How much of the data the model will never see: texts longer than common.max_seq_length.

sentence-transformers cuts every text at ``max_seq_length`` tokens without a word, both in
training and in evaluation. Real corpora (regulations, contracts) hold passages of
thousands of tokens, so a model can be trained and scored on the first paragraph of each
one and nobody is told. fetch counts, with the base model's own tokenizer, how many
questions and passages are cut and what share of the passage tokens is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from embedtune.errors import StageError

CountTokens = Callable[[Sequence[str]], list[int]]
BATCH = 1024  # texts per tokenizer call: bounded memory on a corpus of any size


def tokenizer_counter(folder: Path) -> CountTokens:
    """Token counts (special tokens included, as the model is fed) from the tokenizer saved
    in ``folder``: the one place a tokenizer is loaded to count."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise StageError(f"{folder}: cannot load the model's tokenizer: {exc}") from exc

    def count(texts: Sequence[str]) -> list[int]:
        # truncation=False: a tokenizer.json may carry truncation of its own (MiniLM's cuts
        # at 128), which would hide exactly the lengths this is here to measure.
        ids = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
            "input_ids"
        ]
        return [len(x) for x in ids]

    return count


def token_counter(model_dir: Path) -> CountTokens:
    """``tokenizer_counter`` for the sentence-transformers model in ``model_dir``: its
    tokenizer sits with the Transformer module."""
    from embedtune.models import transformer_folder

    return tokenizer_counter(transformer_folder(model_dir))


def _counts(texts: Sequence[str], count: CountTokens, label: str) -> list[int]:
    from tqdm.auto import tqdm

    out: list[int] = []
    steps = range(0, len(texts), BATCH)
    for i in tqdm(steps, desc=f"counting {label} tokens", disable=len(steps) < 5):
        out.extend(count(texts[i : i + BATCH]))
    return out


def measure(
    anchors: Sequence[str],
    passages: dict[str, str],
    count: CountTokens,
    max_seq_length: int,
    query_prompt: str = "",
    document_prompt: str = "",
) -> dict:
    """Counts of cut texts and the share of passage tokens beyond ``max_seq_length``.

    ``passages`` maps chunk id -> text (each distinct passage counted once, however many
    questions it has); prompts are counted because the model is fed prompt + text."""
    anchor_len = _counts([query_prompt + anchor for anchor in anchors], count, "question")
    ids = list(passages)
    passage_len = _counts([document_prompt + passages[pid] for pid in ids], count, "passage")
    total = sum(passage_len)
    lost = sum(max(0, n - max_seq_length) for n in passage_len)
    longest = max(range(len(ids)), key=passage_len.__getitem__, default=None)
    return {
        "max_seq_length": max_seq_length,
        "questions": len(anchor_len),
        "questions_cut": sum(n > max_seq_length for n in anchor_len),
        "passages": len(passage_len),
        "passages_cut": sum(n > max_seq_length for n in passage_len),
        "passage_tokens": total,
        "passage_tokens_lost": lost,
        "passage_share_lost": round(lost / total, 6) if total else 0.0,
        "longest_passage_tokens": passage_len[longest] if longest is not None else 0,
        "longest_passage_id": ids[longest] if longest is not None else None,
    }


def describe(cut: dict) -> str:
    """One line for the log, from what ``measure`` returned."""
    return (
        f"{cut['passages_cut']} of {cut['passages']} passages and {cut['questions_cut']} of "
        f"{cut['questions']} questions are longer than common.max_seq_length="
        f"{cut['max_seq_length']} tokens; {100 * cut['passage_share_lost']:.1f}% of passage "
        f"tokens are cut off (longest: chunk {cut['longest_passage_id']!r}, "
        f"{cut['longest_passage_tokens']} tokens)"
    )


def check(cut: dict, max_share: float | None, source: str) -> None:
    """Raise when more of the passage text is cut than ``fetch.max_truncated_share`` allows."""
    if max_share is not None and cut["passage_share_lost"] > max_share:
        raise StageError(
            f"{source}: {100 * cut['passage_share_lost']:.1f}% of passage tokens lie beyond "
            f"common.max_seq_length={cut['max_seq_length']} (limit: params key "
            f"'fetch.max_truncated_share' = {max_share}): split the passages into smaller "
            "chunks, raise common.max_seq_length (up to the model's limit), or raise the limit"
        )
