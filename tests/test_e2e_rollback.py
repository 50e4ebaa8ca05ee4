"""Every version restorable: two releases pushed to the project's own DVC remote config, the
cache and outputs wiped, then each rollback command the README shows, run exactly as shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline import ROOT, clone_project, env, run

# The commands the README gives, tested verbatim.
ROLLBACK = "git checkout v1 && dvc pull"
ROLLBACK_MAIN = (
    "git restore --source=v1 --staged --worktree -- . && dvc pull"
    ' && git commit -m "Roll back to v1"'
)
LEARNING_RATES = {"v1": 1e-3, "v2": 4e-3}
TAMPERED = b'{"tampered": true}\n'


def _sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(["sh", "-c", command], cwd)


def _show(repo: Path, rev: str, path: str) -> str:
    return run(["git", "show", f"{rev}:{path}"], repo).stdout


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _object(repo_or_remote: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object with this hash, in a cache or a local remote."""
    return repo_or_remote / "files" / "md5" / md5[:2] / md5[2:]


def _uncached(dvc_yaml: dict) -> set[str]:
    """Outputs declared with `cache: false`: git holds them, not DVC."""
    paths = set()
    for stage in dvc_yaml["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                if isinstance(out, dict):
                    paths |= {p for p, opts in out.items() if opts.get("cache") is False}
    return paths


def assert_outputs_match(repo: Path, rev: str) -> int:
    """Every output in ``rev``'s dvc.lock is in the workspace, byte for byte; returns the count.

    Cached files are compared by md5 with the lock; cached directories file by file with
    their `.dir` manifest; `cache: false` outputs must equal ``rev``'s committed version.
    """
    lock = yaml.safe_load(_show(repo, rev, "dvc.lock"))
    uncached = _uncached(yaml.safe_load(_show(repo, rev, "dvc.yaml")))
    checked = 0
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path, md5 = out["path"], out["md5"]
            target = repo / path
            assert target.exists(), f"{rev}: {path} not restored"
            if path in uncached:
                diff = run(["git", "diff", "--quiet", rev, "--", path], repo, check=False)
                assert diff.returncode == 0, f"{rev}: {path} differs from the commit"
            elif md5.endswith(".dir"):
                manifest = json.loads(_object(repo / ".dvc" / "cache", md5).read_text())
                files = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
                assert files == {e["relpath"] for e in manifest}, f"{rev}: {path} file list"
                for entry in manifest:
                    assert _md5(target / entry["relpath"]) == entry["md5"], entry["relpath"]
            else:
                assert _md5(target) == md5, f"{rev}: {path} md5"
            checked += 1
    return checked


def _status_clean(repo: Path) -> None:
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}")
    assert status == {}, status


@pytest.fixture(scope="module")
def released(tmp_path_factory, reproduced):
    """v1 and v2 (different learning rates) reproduced, committed, tagged and pushed.

    v1 is a copy (history and cache) of the shared reproduced tiny project
    (tests/conftest.py), which has v1's learning rate; v2 is reproduced here. The project's
    own .dvc/config is used: its relative remote URL resolves to the folder next to the
    repository, `<tmp>/embedtune-dvc-remote`.
    """
    root = tmp_path_factory.mktemp("rollback")
    project = clone_project(reproduced[0], root / "project")
    shutil.copy(ROOT / ".dvc" / "config", project / ".dvc" / "config")
    run(["dvc", "config", "core.analytics", "false"], project)
    run(["git", "commit", "-q", "-am", "remote in .dvc/config"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["train"]["learning_rate"] == LEARNING_RATES["v1"]
    for tag, lr in LEARNING_RATES.items():
        params["train"]["learning_rate"] = lr
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro"], project)  # for v1, up to date: nothing runs
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-q", "--allow-empty", "-m", f"release {tag}"], project)
        run(["git", "tag", tag], project)
        # The release habit: push every version, and prove the remote holds all of it.
        run(["dvc", "push"], project)
        assert json.loads(run(["dvc", "status", "-c", "--json"], project).stdout) == {}
    remote = root / "embedtune-dvc-remote"
    assert remote.is_dir(), "the project's remote URL did not resolve next to the repo"
    return root, project, remote


@pytest.mark.slow
def test_rollback_in_place_restores_v1(released):
    root, project, _ = released
    v1 = json.loads(_show(project, "v1", "metrics/evaluate.json"))
    v2 = json.loads(_show(project, "v2", "metrics/evaluate.json"))
    lock1, lock2 = (yaml.safe_load(_show(project, t, "dvc.lock")) for t in ("v1", "v2"))
    model = {t: lk["stages"]["train"]["outs"][0]["md5"] for t, lk in (("v1", lock1), ("v2", lock2))}
    assert model["v1"] != model["v2"], "the two versions must differ for this test to mean anything"

    run(["git", "clean", "-fdqX"], project)  # everything git ignores: the cache and all outputs
    for gone in (".dvc/cache", "data/split", "models/finetuned"):
        assert not (project / gone).exists(), gone
    # Without data, CI's lock check still passes on this checkout of v2.
    e = env()
    e["PYTHONPATH"] = str(ROOT)
    check = subprocess.run(
        [sys.executable, "-m", "embedtune.reporting.lockcheck"],
        cwd=project,
        env=e,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout

    _sh(ROLLBACK, project)
    assert assert_outputs_match(project, "v1") >= 10
    _status_clean(project)

    # Scoring v1's restored model again gives v1's committed metrics.
    run(["dvc", "repro", "-f", "-s", "evaluate"], project)
    again = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert again.keys() == v1.keys()
    for key, value in v1.items():
        assert again[key] == pytest.approx(value, abs=1e-6), key
    if all(abs(v1[k] - v2[k]) <= 1e-6 for k in v1):
        pytest.fail("v1 and v2 score the same: the metric check cannot tell versions apart")


@pytest.mark.slow
def test_fresh_clone_restores_v2_then_rolls_main_back_to_v1(released):
    root, project, _ = released
    clone = root / "clone"  # a sibling of the remote, like the project: same relative URL
    run(["git", "clone", "-q", "-b", "main", str(project), str(clone)], root)
    run(["dvc", "pull"], clone)
    assert assert_outputs_match(clone, "v2") >= 10
    _status_clean(clone)

    _sh(ROLLBACK_MAIN, clone)
    assert run(["git", "branch", "--show-current"], clone).stdout.strip() == "main"
    assert run(["git", "diff", "--quiet", "v1", "HEAD"], clone, check=False).returncode == 0
    assert assert_outputs_match(clone, "v1") >= 10
    _status_clean(clone)


@pytest.mark.slow
def test_corrupted_object_in_the_remote_fails_pull(released):
    root, project, remote = released
    base = root / "corrupt"
    shutil.copytree(remote, base / "embedtune-dvc-remote")
    lock = yaml.safe_load(_show(project, "v2", "dvc.lock"))
    # A file output: DVC names its path when its object is damaged (for a folder output it
    # reports only the damaged .dir object's hash).
    (out,) = [o for o in lock["stages"]["baseline"]["outs"] if o["path"].endswith("per_query.json")]
    obj = _object(base / "embedtune-dvc-remote", out["md5"])
    # Permissions kept as DVC left them: only the content betrays the damage.
    mode = stat.S_IMODE(obj.stat().st_mode)
    obj.chmod(mode | stat.S_IWUSR)
    obj.write_bytes(TAMPERED)
    obj.chmod(mode)

    strict = base / "strict"
    run(["git", "clone", "-q", "-b", "main", str(project), str(strict)], root)
    pulled = run(["dvc", "pull"], strict, check=False)
    assert pulled.returncode != 0, pulled.stdout + pulled.stderr
    assert out["path"] in pulled.stdout + pulled.stderr
    assert not (strict / out["path"]).exists(), "corrupted bytes reached the workspace"

    # The same pull with verify off "succeeds" and hands over the tampered file: verify = true
    # in .dvc/config is what catches it.
    lax = base / "lax"
    run(["git", "clone", "-q", "-b", "main", str(project), str(lax)], root)
    name = run(["dvc", "remote", "default"], lax).stdout.strip()
    run(["dvc", "remote", "modify", "--local", name, "verify", "false"], lax)
    assert run(["dvc", "pull"], lax, check=False).returncode == 0
    assert (lax / out["path"]).read_bytes() == TAMPERED


def test_project_default_remote_verifies_and_lives_outside_the_repo():
    name = run(["dvc", "remote", "default", "--project"], ROOT).stdout.strip()
    assert name, "no default remote in .dvc/config"
    verify = run(["dvc", "config", "--project", f"remote.{name}.verify"], ROOT).stdout.strip()
    assert verify == "true"
    url = run(["dvc", "config", "--project", f"remote.{name}.url"], ROOT).stdout.strip()
    if "://" not in url:
        # Relative URLs in .dvc/config are relative to .dvc/: the store must not sit inside
        # the workspace, where `git clean` or a fresh checkout would take it away.
        resolved = Path(os.path.normpath(ROOT / ".dvc" / url))
        assert ROOT not in resolved.parents and resolved != ROOT, resolved


def test_readme_shows_the_commands_tested_here():
    """The rollback commands above are the README's, character for character."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ROLLBACK in readme
    assert ROLLBACK_MAIN in readme
