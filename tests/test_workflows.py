"""GitHub workflows: actionlint, the workflow JSON schema, and the safety rules of a GPU runner.

The self-hosted runner executes the code of every pull request it builds and keeps state
between jobs, so these rules are checked on the parsed YAML rather than trusted to review.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
CI = "ci.yml"
PIPELINE = "pipeline.yml"
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    assert path, f"{name} is not installed in {BIN}: run `make setup` (dev extra)"
    return path


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _triggers(wf: dict) -> dict:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    on = wf.get("on", wf.get(True))
    return (
        {on: None} if isinstance(on, str) else {k: None for k in on} if isinstance(on, list) else on
    )


def _all() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.y*ml"))}


def _steps(wf: dict):
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool("actionlint"), "-no-color", "-oneline"], cwd=cwd, capture_output=True, text=True
    )


def test_both_workflows_exist():
    assert {CI, PIPELINE} <= set(_all())


def test_actionlint_passes():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_is_really_checking(tmp_path):
    # Without the runner-label config, or with an action on the deprecated node20 runtime,
    # the same linter must fail: the passing test above is not vacuous.
    repo = tmp_path / "repo"
    shutil.copytree(WORKFLOWS, repo / ".github" / "workflows")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    proc = _lint(repo)
    assert proc.returncode != 0 and 'label "gpu" is unknown' in proc.stdout
    shutil.copy(ROOT / ".github" / "actionlint.yaml", repo / ".github" / "actionlint.yaml")
    pipeline = repo / ".github" / "workflows" / PIPELINE
    pipeline.write_text(pipeline.read_text().replace("actions/checkout@v5", "actions/checkout@v4"))
    proc = _lint(repo)
    assert proc.returncode != 0 and "node20" in proc.stdout


@pytest.mark.parametrize("name", [CI, PIPELINE])
def test_workflow_schema(name):
    proc = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOWS / name),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    wf = _load(CI)
    wf["jobs"]["test"]["timeout-minutes"] = "an hour"
    broken.write_text(yaml.safe_dump(wf))
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0


def test_no_pull_request_target_anywhere():
    # pull_request_target runs with the base repository's secrets and write token; with a
    # checkout of the PR's code that hands both to anyone who opens a pull request.
    for name, wf in _all().items():
        assert "pull_request_target" not in _triggers(wf), name


def test_every_job_has_a_timeout():
    for name, wf in _all().items():
        for job_id, job in wf["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{name}:{job_id}"


def test_permissions_are_minimal():
    allowed = {
        CI: {"contents": {"read"}},
        PIPELINE: {"contents": {"read", "write"}, "pull-requests": {"read", "write"}},
    }
    for name, wf in _all().items():
        # Declared at the top, so no job falls back to the repository's default token scope.
        assert "permissions" in wf, f"{name}: no top-level permissions"
        scopes = [wf["permissions"]] + [
            j["permissions"] for j in wf["jobs"].values() if "permissions" in j
        ]
        for scope in scopes:
            assert isinstance(scope, dict), f"{name}: permissions must be a mapping, not {scope!r}"
            for key, value in scope.items():
                assert value in allowed[name].get(key, set()), f"{name}: {key}: {value}"
    top = _load(PIPELINE)["permissions"]
    assert top == {}, "pipeline: grant permissions per job only"


def test_ci_runs_lint_and_tests_on_every_push_and_pr():
    wf = _load(CI)
    assert {"push", "pull_request"} <= set(_triggers(wf))
    test = wf["jobs"]["test"]
    assert test["runs-on"] == "ubuntu-latest"
    runs = [s.get("run", "") for s in test["steps"]]
    assert "make lint" in runs and "make test" in runs
    python = [s for s in test["steps"] if str(s.get("uses", "")).startswith("actions/setup-python")]
    assert python and str(python[0]["with"]["python-version"]) == "3.11"


def test_ci_checks_the_lock():
    runs = [s.get("run", "") for s in _load(CI)["jobs"]["lock"]["steps"]]
    assert any("python -m embedtune.reporting.lockcheck" in r for r in runs)


def test_gpu_job_is_guarded():
    wf = _load(PIPELINE)
    triggers = _triggers(wf)
    assert set(triggers) == {"pull_request", "workflow_dispatch"}
    assert triggers["pull_request"]["branches"] == ["main"]
    assert set(triggers["pull_request"]["types"]) == {"opened", "synchronize", "reopened"}
    assert wf["concurrency"] == {"group": "gpu-pipeline", "cancel-in-progress": False}
    gpu_jobs = {k: j for k, j in wf["jobs"].items() if "self-hosted" in j["runs-on"]}
    assert gpu_jobs, "no job on the self-hosted runner"
    for job_id, job in gpu_jobs.items():
        assert "gpu" in job["runs-on"], job_id
        guard = " ".join(str(job.get("if", "")).split())
        assert FORK_GUARD in guard, f"{job_id}: runs for pull requests from forks"
        assert "github.event_name == 'workflow_dispatch'" in guard, job_id
        assert set(job["permissions"]) == {"contents", "pull-requests"}


def test_gpu_job_steps():
    job = _load(PIPELINE)["jobs"]["reproduce"]
    checkout = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["fetch-depth"] == 0
    assert "head_ref" in checkout["with"]["ref"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    for command in (
        "make setup",
        "dvc cache dir --local",
        "dvc pull -r team",
        "dvc repro",
        "dvc push -r team",
        "git push origin",
        "python -m embedtune.reporting.pr_comment --base-rev",
        "cml comment update --watermark-title=",
    ):
        assert command in runs, command
    order = [runs.index(c) for c in ("dvc pull", "dvc repro", "dvc push", "commit -m", "cml")]
    assert order == sorted(order), "steps out of order: data must be pushed before the commit"
    cache = re.search(r"dvc cache dir --local (\S+)", runs).group(1)
    assert "GITHUB_WORKSPACE" not in cache and not cache.strip("\"'").startswith((".", "/__w"))


def test_secrets_only_where_the_remote_is_used():
    wf = _load(PIPELINE)
    job = wf["jobs"]["reproduce"]
    assert "secrets." not in str(wf.get("env", "")) + str(job.get("env", ""))
    for _, step in _steps(wf):
        if "secrets." in str(step.get("env", "")):
            assert re.search(r"\bdvc (pull|push)\b", step.get("run", "")), step.get("name")


def test_no_expressions_inside_scripts():
    # `${{ }}` is pasted into the script before bash runs it: a branch name or PR title
    # could inject commands. Values reach scripts through env instead.
    for name, wf in _all().items():
        for job_id, step in _steps(wf):
            assert "${{" not in step.get("run", ""), f"{name}:{job_id}:{step.get('name')}"


def test_make_targets_used_by_workflows_exist():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    for name, wf in _all().items():
        for _, step in _steps(wf):
            for target in re.findall(r"\bmake ([a-z][a-z-]*)", step.get("run", "")):
                assert target in targets, f"{name}: make {target}"
