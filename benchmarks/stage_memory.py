"""Benchmark: peak resident memory of every pipeline stage beside a plain training script.

Copies the project (tracked files of the working tree) into a temporary folder, runs each
stage's command from dvc.yaml in pipeline order under GNU time (`/usr/bin/time -v`, whose
"Maximum resident set size" is the kernel's own high-water mark for the process), then runs
benchmarks/plain_train.py (a plain sentence-transformers script) on the same training
split with the same model, batch size, sequence length, loss and per-epoch evaluation on
the dev split (and, when the profile sets ``train.attention_dropout``, once more with that
setting), and the train stage once more with ``train.gradient_checkpointing: true``.
Prints one table with every figure from this one run (each stage's seconds are the
per-stage wall-time table of the default run) and writes it to
benchmarks/results/stage_memory.json (benchmarks/record.py).

    python benchmarks/stage_memory.py               # the default profile (minutes)
    python benchmarks/stage_memory.py --stages-only # the stages alone: the per-stage times
    python benchmarks/stage_memory.py --keep /tmp/m # keep the copy to look inside
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # record.py beside this script
MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def copy_project(dest: Path) -> None:
    """The tracked files of the working tree (what a fresh clone would hold, plus edits)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def measured(cmd: list[str], cwd: Path) -> tuple[int, float]:
    """(peak RSS in KB, seconds) of one command run under GNU time."""
    # Stage commands call `python` from PATH: this interpreter's, as under `make run`.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"stage_memory: {cmd} failed with status {done.returncode}")
    return int(MAXRSS.findall(done.stderr)[-1]), seconds


def main() -> None:
    from tabulate import tabulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temp folder)")
    ap.add_argument("--out", help="result JSON (default benchmarks/results/stage_memory.json)")
    ap.add_argument(
        "--stages-only",
        action="store_true",
        help="skip the extra training runs and the plain script",
    )
    args = ap.parse_args()
    import record

    work = Path(args.keep or tempfile.mkdtemp(prefix="stage-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    copy_project(work)
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    conf = yaml.safe_load((work / "params.yaml").read_text())
    rows = []
    for name, stage in stages.items():  # dvc.yaml lists the stages in pipeline order
        print(f"stage_memory: {name} ...", flush=True)
        kb, seconds = measured(shlex.split(stage["cmd"]), work)
        rows.append([name, round(kb / 1024), round(seconds)])
    if args.stages_only:
        total = sum(r[2] for r in rows)
        print(tabulate([*rows, ["all stages", max(r[1] for r in rows), total]],
                       headers=["stage", "peak RSS MB", "seconds"], tablefmt="github"))  # fmt: skip
        results = [dict(zip(["stage", "peak_rss_mb", "seconds"], r, strict=True)) for r in rows]
        path = record.write("stage_times", {"stages": results, "total_seconds": total}, args.out)
        print(f"wrote {path}")
        return
    # The train stage again with train.gradient_checkpointing on (the memory saver).
    print("stage_memory: train with gradient_checkpointing: true ...", flush=True)
    saver = {**conf, "train": {**conf["train"], "gradient_checkpointing": True}}
    (work / "params-checkpointing.yaml").write_text(yaml.safe_dump(saver, sort_keys=False))
    cmd = shlex.split(stages["train"]["cmd"]) + ["--params", "params-checkpointing.yaml"]
    kb, seconds = measured(cmd, work)
    rows.append(["train, gradient_checkpointing: true", round(kb / 1024), round(seconds)])
    train, common = conf["train"], conf["common"]
    plain_cmd = [
        sys.executable, "benchmarks/plain_train.py", "--model", "models/base",
        "--out", str(work / "plain-out"), "--batch-size", str(train["batch_size"]),
        "--max-seq-length", str(common["max_seq_length"]), "--epochs", str(train["epochs"]),
        "--lr", str(train["learning_rate"]), "--dims", *(str(d) for d in common["dims"]),
    ]  # fmt: skip
    # The plain script as a user writes it keeps the model's attention dropout; when the
    # profile sets train.attention_dropout, the same script with that setting runs too, so
    # the table shows how much of the difference that one setting is.
    dropout = train.get("attention_dropout")
    if dropout is not None:
        print(f"stage_memory: plain training script, attention dropout {dropout} ...", flush=True)
        kb, seconds = measured([*plain_cmd, "--attention-dropout", str(dropout)], work)
        rows.append([f"plain training script, attention dropout {dropout}", round(kb / 1024),
                     round(seconds)])  # fmt: skip
    print("stage_memory: plain training script ...", flush=True)
    plain_kb, seconds = measured(plain_cmd, work)
    plain = round(plain_kb / 1024)
    table = [r + [f"{r[1] / plain:.2f}"] for r in rows]
    table.append(["plain training script", plain, round(seconds), "1.00"])
    headers = ["run", "peak RSS MB", "seconds", "vs plain"]
    print(tabulate(table, headers=headers, tablefmt="github"))
    keys = ["run", "peak_rss_mb", "seconds", "rss_vs_plain"]
    results = [dict(zip(keys, r, strict=True)) for r in table]
    print(f"wrote {record.write('stage_memory', {'runs': results}, args.out)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
