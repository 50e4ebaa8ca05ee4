"""The PR report command, against a real git+DVC repository with two versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embedtune.reporting import pr_comment
from tests.pipeline import ROOT, env, run

SCORE_PY = """\
import json, os, yaml
lr = yaml.safe_load(open("params.yaml"))["train"]["learning_rate"]
os.makedirs("metrics", exist_ok=True)
# Metrics follow the params, so the two commits differ in both.
json.dump({"dim_64_ndcg@10": round(0.3321 + 100 * lr, 4), "dim_64_mrr@10": round(0.25 + 50 * lr, 4),
           "unchanged": 1.0}, open("metrics/score.json", "w"))
open("metrics/compare.md", "w").write("## Fine-tuned vs base model\\n\\n![ndcg](compare.png)\\n")
open("metrics/compare.png", "wb").write(b"\\x89PNG fake")
# Per-query ndcg@10 of 40 test queries (DVC-cached, like the evaluate stage's): the second
# version is better on every query by a planted 100 * lr.
os.makedirs("data/evaluate", exist_ok=True)
os.makedirs("data/build_ir_eval", exist_ok=True)
scores = {f"q{i}": round(0.2 + 0.01 * i + 100 * lr, 4) for i in range(40)}
json.dump({"dim_64": scores}, open("data/evaluate/per_query.json", "w"))
queries = {q: "question " + q for q in scores}
json.dump({"queries": queries}, open("data/build_ir_eval/test.json", "w"))
"""

DVC_YAML = {
    "stages": {
        "score": {
            "cmd": "python score.py",
            "deps": ["score.py"],
            "params": ["train"],
            "metrics": [{"metrics/score.json": {"cache": False}}],
            "outs": [
                {"metrics/compare.md": {"cache": False}},
                "data/evaluate/per_query.json",
                "data/build_ir_eval/test.json",
            ],
            "plots": [{"metrics/compare.png": {"cache": False}}],
        }
    }
}


def _params(lr: float) -> str:
    return yaml.safe_dump({"train": {"learning_rate": lr, "epochs": 2}})


def _report(repo: Path, *args: str) -> tuple[int, str, str]:
    e = env()
    # The command under test comes from this checkout, whatever the temp repo holds.
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "embedtune.reporting.pr_comment", *args],
        cwd=repo,
        env=e,
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """A repo whose HEAD (lr 0.002) follows a first commit (lr 0.001), both reproduced."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    (repo / "score.py").write_text(SCORE_PY)
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    shas = []
    for lr in (0.001, 0.002):
        (repo / "params.yaml").write_text(_params(lr))
        run(["dvc", "repro", "-q"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", f"lr {lr}"], repo)
        shas.append(run(["git", "rev-parse", "--short", "HEAD"], repo).stdout.strip())
    return repo, shas


def _row(body: str, name: str) -> list[str]:
    """Cells of the one table row naming ``name``."""
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in body.splitlines()
        if line.startswith("|")
    ]
    found = [r for r in rows if name in r]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_report_shows_metric_and_param_changes(two_versions, tmp_path):
    repo, (first, head) = two_versions
    out = tmp_path / "comment" / "body.md"
    rc, _, err = _report(repo, "--base-rev", first, "--out", str(out))
    assert rc == 0, err
    body = out.read_text()
    assert first in body and head in body
    assert "## Fine-tuned vs base model" in body  # the compare stage's table comes first
    # path, metric, old, new, change
    assert _row(body, "dim_64_ndcg@10") == [
        "metrics/score.json",
        "dim_64_ndcg@10",
        "0.4321",
        "0.5321",
        "0.1",
    ]
    assert _row(body, "dim_64_mrr@10")[2:4] == ["0.3", "0.35"]
    assert "unchanged" not in body  # dvc lists only what changed
    assert _row(body, "train.learning_rate") == [
        "params.yaml",
        "train.learning_rate",
        "0.001",
        "0.002",
    ]
    assert "train.epochs" not in body
    assert body.index("Fine-tuned vs base") < body.index("dim_64_ndcg@10")
    # The base revision's per-query scores come from the DVC cache: a paired test of the
    # branch's model against main's finds the planted +0.1 on every query.
    assert "this branch vs base" in body
    row = _row(body, "[+0.1000, +0.1000]")
    assert row[0] == "64" and row[3] == "+0.1000" and row[-1] == "yes"


def test_versus_base_explains_when_it_cannot_pair():
    scores = {"dim_64": {"q1": 0.5, "q2": 0.6}}
    assert "differ from the base" in pr_comment.versus_base(scores, scores, same_queries=False)
    assert "not available" in pr_comment.versus_base(None, scores, same_queries=True)
    same = pr_comment.versus_base(scores, scores, same_queries=True)
    assert _row(same, "64") == [
        "64",
        "0.5500",
        "0.5500",
        "+0.0000",
        "[+0.0000, +0.0000]",
        "1.0000",
        "**no** (could be noise)",
    ]


def test_report_image_link_resolves_from_the_output_file(two_versions, tmp_path):
    repo, (first, _) = two_versions
    out = tmp_path / "elsewhere" / "body.md"
    rc, _, err = _report(repo, "--base-rev", first, "--out", str(out))
    assert rc == 0, err
    link = pr_comment.IMAGE.search(out.read_text()).group(2)
    # CML resolves (and with --publish uploads) local images relative to the markdown file.
    assert (out.parent / link).resolve() == (repo / "metrics" / "compare.png").resolve()


def test_report_without_changes_says_so(two_versions):
    repo, (_, head) = two_versions
    rc, body, err = _report(repo, "--base-rev", "HEAD")
    assert rc == 0, err
    assert "No metric changed." in body and "No param changed." in body
    assert "](metrics/compare.png)" in body  # printed to stdout: links relative to cwd


def test_report_fails_loudly_on_an_unknown_base(two_versions):
    repo, _ = two_versions
    rc, _, err = _report(repo, "--base-rev", "no-such-rev")
    assert rc != 0 and "error: `git rev-parse --short --verify no-such-rev^{commit}` failed" in err
    assert "fatal:" in err  # git's own words


def test_rewrite_images_leaves_urls_alone():
    md = "![a](compare.png) ![b](https://x.org/c.png) ![c](/abs/c.png) ![d](data:image/png;x)"
    out = pr_comment.rewrite_images(md, Path("/r/metrics"), Path("/r"))
    assert out.startswith("![a](metrics/compare.png)")
    assert "(https://x.org/c.png)" in out and "(/abs/c.png)" in out and "(data:image/png" in out


def test_empty_diff_tables_become_one_line():
    empty = "| Path   | Metric   | HEAD   | workspace   | Change   |\n|--------|----------|\n"
    assert pr_comment.table_rows(empty) == 0
    assert "_nothing_" in pr_comment.diff_section("T", empty, "nothing")
    full = empty + "| m.json | acc | 0.1 | 0.2 | 0.1 |\n"
    assert pr_comment.table_rows(full) == 1 and "| acc |" in pr_comment.diff_section(
        "T", full, "nothing"
    )


def test_missing_report_is_named_not_fatal():
    body = pr_comment.assemble("# h\n", None, "", "")
    assert "metrics/compare.md not found" in body and "No metric changed." in body


def test_fit_cuts_long_bodies():
    assert pr_comment.fit("x" * 10, limit=100) == "x" * 10
    cut = pr_comment.fit("x" * 1000, limit=100)
    assert len(cut) <= 100 and cut.rstrip().endswith("_")
