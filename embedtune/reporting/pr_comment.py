"""Pull-request report: the comparison table, then metrics and params changed since a base.

Run as `python -m embedtune.reporting.pr_comment --base-rev <git rev> [--out FILE]` in the
repository root, after `dvc repro`.
The body is what the GPU workflow posts with `cml comment update`:
a header naming both revisions, metrics/compare.md (written by the compare stage), then
`dvc metrics diff <base> --md` and `dvc params diff <base> --md` against the workspace.
Image links in the report are rewritten relative to the output file, because CML resolves
(and, with --publish, uploads) local images relative to the markdown file it is given.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from embedtune import cli
from embedtune.reporting.dvc_cli import dvc, run_command

REPORT = Path("metrics/compare.md")
# The fine-tuned model's per-query ndcg@10 (evaluate stage) and the test queries it was
# scored on (build_ir_eval): DVC-cached outputs, read at the base revision with dvc.api.
PER_QUERY = "data/evaluate/per_query.json"
TEST_QUERIES = "data/build_ir_eval/test.json"
# GitHub rejects comment bodies longer than 65,536 characters; leave room for CML's
# watermark and the published image URLs.
MAX_CHARS = 60_000
IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)(\))")

# Named, not __name__: run with -m this module is __main__, outside the package logger.
log = logging.getLogger("embedtune.reporting.pr_comment")


def rewrite_images(markdown: str, source_dir: Path, out_dir: Path) -> str:
    """Point relative image links written for ``source_dir`` at the same files from ``out_dir``.

    URLs, data URIs and absolute paths are left alone.
    """

    def fix(m: re.Match) -> str:
        url = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) or url.startswith(("/", "#")):
            return m.group(0)
        target = os.path.relpath(os.path.abspath(source_dir / url), os.path.abspath(out_dir))
        return m.group(1) + Path(target).as_posix() + m.group(3)

    return IMAGE.sub(fix, markdown)


def table_rows(md_table: str) -> int:
    """Number of body rows in a markdown table as printed by `dvc ... diff --md`."""
    rows = [line for line in md_table.splitlines() if line.lstrip().startswith("|")]
    return max(len(rows) - 2, 0)  # minus the header and the |---| separator


def diff_section(title: str, md_table: str, nothing: str) -> str:
    """A titled section holding a diff table, or one line when the table has no rows."""
    body = md_table.strip() if table_rows(md_table) else f"_{nothing}_"
    return f"### {title}\n\n{body}\n"


def header(base: str, base_sha: str, head_sha: str) -> str:
    """First lines of the comment: which revisions are compared."""
    shown = base if base.startswith(base_sha) else f"{base} ({base_sha})"
    return (
        f"# Pipeline report\n\nBase `{shown}` compared with the workspace at head `{head_sha}`.\n"
    )


def read_at(path: str, rev: str | None, root: Path) -> dict | None:
    """A JSON output of the pipeline at git revision ``rev`` (None: the workspace), from the
    workspace, the DVC cache or the remote; None when that version is not available."""
    import json

    if rev is None:
        file = root / path
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    import dvc.api

    try:
        return json.loads(dvc.api.read(path, repo=str(root), rev=rev))
    except Exception:  # not in that revision, not in the cache, or no remote: say so instead
        return None


def versus_base(
    base_scores: dict | None,
    head_scores: dict | None,
    same_queries: bool,
    seed: int = 0,
) -> str:
    """The significance test of the compare stage, between the base revision's fine-tuned
    model and this one's, paired per test query; or one line saying why it cannot run."""
    from tabulate import tabulate

    from embedtune.reporting.stats import paired_test, signed, significance_cells

    title = "### Fine-tuned model: this branch vs base, per test query\n\n"
    if base_scores is None or head_scores is None:
        return title + "_Per-query scores of both revisions are needed; not available._\n"
    if not same_queries:
        return title + (
            "_The test queries differ from the base revision's (data or split changed), so "
            "the scores cannot be paired; compare the tables above instead._\n"
        )
    rows = []
    for key in sorted(k for k in head_scores if k in base_scores and k.startswith("dim_")):
        qids = sorted(set(head_scores[key]) & set(base_scores[key]))
        if not qids:
            continue
        b = [base_scores[key][q] for q in qids]
        h = [head_scores[key][q] for q in qids]
        t = paired_test(b, h, seed)
        rows.append(
            [
                int(key.removeprefix("dim_")),
                f"{sum(b) / len(b):.4f}",
                f"{sum(h) / len(h):.4f}",
                signed(t["mean_diff"]),
                *significance_cells(t),
            ]
        )
    if not rows:
        return title + "_No dimension in common with the base revision._\n"
    rows.sort(key=lambda r: -r[0])
    table = tabulate(
        rows,
        headers=["dim", "base ndcg@10", "branch ndcg@10", "change", "95% CI", "p", "significant"],
        tablefmt="github",
        disable_numparse=True,
    )
    return title + table + "\n"


def assemble(
    head: str, report_md: str | None, metrics_md: str, params_md: str, versus: str = ""
) -> str:
    """The whole comment body from its parts."""
    report = (
        report_md.strip()
        if report_md is not None
        else f"_{REPORT} not found: run `dvc repro` before building the report._"
    )
    parts = [
        head,
        report,
        diff_section(
            "Metrics changed since base (`dvc metrics diff`)", metrics_md, "No metric changed."
        ),
        diff_section(
            "Params changed since base (`dvc params diff`)", params_md, "No param changed."
        ),
    ]
    if versus:
        parts.insert(2, versus)
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


def fit(body: str, limit: int = MAX_CHARS) -> str:
    """Cut a body that GitHub would reject, saying so at the end."""
    if len(body) <= limit:
        return body
    note = (
        "\n\n_Report cut to fit a GitHub comment; run "
        "`python -m embedtune.reporting.pr_comment` for all._\n"
    )
    return body[: limit - len(note)] + note


def short_sha(rev: str, cwd: Path) -> str:
    """Abbreviated commit id of ``rev``; fails loudly on an unknown revision."""
    return run_command(
        ["git", "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"], cwd
    ).strip()


def build(base: str, root: Path, out_dir: Path) -> str:
    """Read the report and both diffs from the repository at ``root`` and assemble them."""
    head = header(base, short_sha(base, root), short_sha("HEAD", root))
    report_path = root / REPORT
    report_md = None
    if report_path.is_file():
        text = report_path.read_text(encoding="utf-8")
        report_md = rewrite_images(text, report_path.parent, out_dir)
    metrics_md = dvc(["metrics", "diff", base, "--md"], root)
    params_md = dvc(["params", "diff", base, "--md"], root)
    same = read_at(TEST_QUERIES, base, root)
    same = same is not None and same == read_at(TEST_QUERIES, None, root)
    versus = versus_base(read_at(PER_QUERY, base, root), read_at(PER_QUERY, None, root), same)
    return fit(assemble(head, report_md, metrics_md, params_md, versus))


def main(argv: list[str] | None = None) -> int:
    """Write the comment body to --out (or print it); non-zero when git or dvc fail."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base-rev", required=True, help="git revision to compare with, e.g. origin/main"
    )
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: stdout)")
    ap.add_argument("--repo", type=Path, default=Path("."), help="repository root")
    args = ap.parse_args(argv)
    out_dir = args.out.parent if args.out else Path.cwd()
    try:
        body = build(args.base_rev, args.repo, out_dir)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body + "\n")  # the command's result, on stdout
    return 0


if __name__ == "__main__":
    cli.setup_logging("pr_comment")
    raise SystemExit(main())
