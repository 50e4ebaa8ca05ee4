"""chunk: split a folder of documents into passages measured in the base model's tokens.

Optional (documents/dvc.yaml.off). Its passages are generate's input and can be fetch's
knowledge base (fetch.corpus.path: data/chunk/passages.jsonl).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedtune import cli, config, io
from embedtune.documents import chunking


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for passages.jsonl and summary.json")
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    config.check_token_limits(conf, ("chunk.size",))
    cfg = conf.chunk
    folder = Path(cfg.folder)
    _, other = chunking.find_documents(folder)
    if other:
        print(f"chunk: ignored {len(other)} file(s) of other types (first: {other[0]})")
    count = chunking.text_counter(
        chunking.model_folder(conf.common.model), conf.common.document_prompt
    )
    result = chunking.chunk_documents(folder, count, cfg.size, cfg.overlap, cfg.on_bad_document)
    info = chunking.summary(result, cfg.size, cfg.overlap, other)
    if info["passages_over_size"]:
        print(
            f"chunk: warning: {info['passages_over_size']} passage(s) exceed chunk.size after "
            "the overlap merge; fetch reports what common.max_seq_length cuts"
        )
    with io.atomic_path(args.out) as tmp:
        tmp.mkdir()
        io.write_jsonl(tmp / "passages.jsonl", result.passages)
        io.write_json(tmp / "summary.json", info)
    print(
        f"chunk: {info['passages']} passages from {info['documents']} document(s) in {folder} "
        f"({len(result.skipped)} skipped); tokens per passage min {info['tokens_min']}, median "
        f"{info['tokens_median']}, max {info['tokens_max']} (size {cfg.size}, overlap "
        f"{cfg.overlap}) -> {args.out}"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
