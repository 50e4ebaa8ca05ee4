"""Check that dvc.lock matches the code, params and commands that git holds.

CI runs this on every push and pull request, without the data: `dvc status` compares the
hashes recorded in dvc.lock with the files in the checkout. Code, params.yaml, stage
commands and git-tracked outputs (the `cache: false` metrics) are all present there, so
any difference means dvc.lock is stale. Data and models live only in the DVC remote: they
are missing from a fresh checkout and are listed as not checked; the GPU pipeline, which
pulls them, is what reproduces and verifies them.

Run as `python -m embedtune.reporting.lockcheck`; exits 1 when dvc.lock is stale, 2 when dvc fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field

from embedtune import cli
from embedtune.reporting.dvc_cli import dvc

# States `dvc status` reports for files absent from the workspace or the cache: expected in
# a checkout without `dvc pull`, so they say nothing about dvc.lock.
ABSENT = frozenset({"deleted", "not in cache"})

# Named, not __name__: run with -m this module is __main__, outside the package logger.
log = logging.getLogger("embedtune.reporting.lockcheck")


@dataclass
class Verdict:
    """What `dvc status` said, split into stale entries and entries that could not be checked."""

    stale: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)


def classify(status: dict) -> Verdict:
    """Sort the entries of `dvc status --json` into stale ones and absent data.

    Entries are either a plain string ("changed command", "always changed") or a mapping
    such as {"changed deps": {path: state}}; for a params file the state is itself a
    mapping {param: state}.
    """
    verdict = Verdict()
    for stage, entries in sorted(status.items()):
        for entry in entries:
            if isinstance(entry, str):
                verdict.stale.append(f"{stage}: {entry}")
                continue
            for kind, paths in entry.items():
                for path, state in paths.items():
                    if isinstance(state, dict):
                        verdict.stale += [
                            f"{stage}: {kind}: {path}: {key} {s}" for key, s in state.items()
                        ]
                    elif state in ABSENT:
                        verdict.not_checked.append(f"{stage}: {path} ({state})")
                    else:
                        verdict.stale.append(f"{stage}: {kind}: {path} {state}")
    return verdict


def render(verdict: Verdict) -> str:
    """Human-readable summary for the CI log."""
    lines = []
    if verdict.stale:
        lines.append("dvc.lock is stale: it does not match the code, params or commands:")
        lines += [f"  {s}" for s in verdict.stale]
        lines.append(
            "Fix: run `dvc repro` (or let the GPU pipeline do it on the pull request), "
            "`dvc push`, then commit dvc.lock and metrics/."
        )
    else:
        lines.append("dvc.lock matches the code, params and commands.")
    if verdict.not_checked:
        lines.append(
            f"Not checked here ({len(verdict.not_checked)} outputs/deps absent without "
            "`dvc pull`; the GPU pipeline verifies them):"
        )
        lines += [f"  {s}" for s in verdict.not_checked]
    return "\n".join(lines)


def dvc_status(cwd: str | None = None) -> dict:
    """`dvc status --json` of the repository at ``cwd``, from the dvc of this interpreter."""
    return json.loads(dvc(["status", "--json"], cwd) or "{}")


def main(argv: list[str] | None = None) -> int:
    """Print the verdict; 0 when dvc.lock is current, 1 when stale, 2 when dvc fails."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=None, help="repository root (default: current folder)")
    args = ap.parse_args(argv)
    try:
        status = dvc_status(args.repo)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 2
    verdict = classify(status)
    sys.stdout.write(render(verdict) + "\n")  # the command's result, on stdout
    return 1 if verdict.stale else 0


if __name__ == "__main__":
    cli.setup_logging("lockcheck")
    raise SystemExit(main())
