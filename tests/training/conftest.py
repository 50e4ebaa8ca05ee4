"""Fixtures shared by the training tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def library_log(caplog):
    """``caplog`` holding the package's records from INFO up (the package logger is at
    WARNING until a stage's ``cli.setup_logging`` lowers it)."""
    caplog.set_level(logging.INFO, logger="embedtune")
    return caplog
