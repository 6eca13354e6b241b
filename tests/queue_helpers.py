"""Helpers of the worker tests: a tiny random checkpoint, test clips."""

from __future__ import annotations

import contextlib
import http.server
import inspect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TINY_INPUT = 64
TINY_FRAMES = 6


def save_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random, small network (fast on CPU) saved with ``save_pretrained``."""
    import torch

    from cre_models.model import CompressionResilientNetwork, EmbedderConfig, NetworkConfig
    from cre_models.weights import DecisionSpec, InputSpec, save_pretrained

    torch.manual_seed(seed)
    net = CompressionResilientNetwork(
        config=NetworkConfig(
            embedder=EmbedderConfig(embedding_dim=16, channels=(8, 8, 16, 16)),
            denoiser=None,
            head_hidden=16,
        )
    )
    save_pretrained(
        net,
        directory,
        name="tiny-test",
        version="0.0.1",
        input_spec=InputSpec(size=TINY_INPUT, frames_per_video=TINY_FRAMES),
        decision=DecisionSpec(threshold=0.5, aggregation="mean"),
        include_denoiser=False,
    )
    return directory


def write_clip(path: Path, **kwargs: object) -> Path:
    """``tests.synth.write_video`` with only the keyword arguments it supports."""
    from tests.synth import write_video

    params = inspect.signature(write_video).parameters
    return write_video(path, **{k: v for k, v in kwargs.items() if k in params})  # type: ignore[arg-type]


def synth_supports(name: str) -> bool:
    from tests.synth import write_video

    return name in inspect.signature(write_video).parameters


def worker_environment(
    monkeypatch: pytest.MonkeyPatch, weights: Path, redis_url: str, **more: object
) -> None:
    """``CRE_*`` of a worker scoring with ``weights`` on ``redis_url``, one torch thread.

    ``more`` adds variables: ``fetch_retries=0`` sets ``CRE_FETCH_RETRIES=0``.
    """
    settings = {"weights": weights, "redis_url": redis_url, "torch_threads": 1, **more}
    for name, value in settings.items():
        monkeypatch.setenv(f"CRE_{name.upper()}", str(value))


@contextlib.contextmanager
def serve_http(handler: Callable[..., Any]) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a threaded HTTP server running ``handler``."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
