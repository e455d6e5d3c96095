"""Fixtures of the market-data / replay / strategy tests."""

from __future__ import annotations

import pytest

from adapters.datasets import Tape, load_emini


@pytest.fixture(scope="session")
def emini() -> Tape:
    """The real 500k E-mini tape (loaded once per session)."""
    return load_emini()
