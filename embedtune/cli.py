"""Where a stage starts: logging set up once under the stage's name, user errors as one
line, interrupts as a non-zero exit, and the Hub switched off for stages that must not
touch the network.

Library modules log through ``logging.getLogger(__name__)`` and never name the stage that
called them; the stage prefix is added here, by the handler, so a benchmark that calls the
same code gets its own prefix (or none)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from embedtune.errors import StageError

log = logging.getLogger("embedtune")


class _StageFormatter(logging.Formatter):
    """``<stage>: message``, and ``<stage>: warning: message`` for warnings and worse: the
    lines a user of the stages has always read, now from one place."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.prefix = f"{name}: " if name else ""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{self.prefix}{level}{record.getMessage()}"


def setup_logging(name: str, level: int = logging.INFO) -> None:
    """Send this package's log records to stderr as ``<name>: ...``; called once per process
    by ``run_stage`` (benchmarks may call it with their own name)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StageFormatter(name))
    log.handlers[:] = [handler]
    log.setLevel(level)  # records still propagate: a test's caplog sees them


def offline() -> None:
    """Forbid Hub downloads: only fetch may touch the network, every later stage is local."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"


def _raise_interrupt(signum: int, _frame: Any) -> None:
    # SIGTERM would otherwise end Python without unwinding, skipping the cleanup of
    # temporary outputs; turning it into KeyboardInterrupt runs every `finally`.
    raise KeyboardInterrupt(f"signal {signum}")


def _stage_name(main: Callable) -> str:
    # Run as `python -m stages.fetch`, main's module is __main__, but its spec keeps the name.
    spec = getattr(main, "__globals__", {}).get("__spec__")
    module = spec.name if spec is not None else getattr(main, "__module__", "")
    return module.rpartition(".")[2] if module != "__main__" else ""


def run_stage(
    main: Callable[[list[str] | None], None], argv: list[str] | None = None, name: str | None = None
) -> int:
    """Run a stage's main: user errors print one clear line; interrupts exit non-zero.
    Log lines carry ``name`` (default: the stage module's own name)."""
    setup_logging(_stage_name(main) if name is None else name)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main(argv)
    except StageError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: no output was written")
        return 130
    return 0
