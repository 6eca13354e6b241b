"""The restricted payload loader: RQ's default format in, plain data out, nothing run."""

from __future__ import annotations

import builtins
import copyreg
import json
import pickle
import pickletools
from pathlib import Path
from typing import Any

import pytest
from rq.serializers import DefaultSerializer

from worker.payloads import (
    MAX_PAYLOAD_BYTES,
    PLAIN_OPCODES,
    PayloadError,
    PlainDataSerializer,
    loads_plain,
)

JOB_DATA = (
    "worker.jobs.score_video_job",
    None,
    ("/videos/a b/ü.mp4", {"frames": 8, "aggregation": "topk_mean"}),
    {},
)


class _TouchesAFile:
    """Unpickling this calls ``open(path, "w")``: it creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.path), "w"))


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips_at_every_protocol(protocol: int) -> None:
    value: Any = {
        "s": "x" * 300,
        "i": [0, -1, 2**70, True, False, None],
        "f": 0.25,
        "t": (1, (2, (3, ()))),
        "d": {1: "int key", "nested": {"progress": {"frames_done": 3}}},
    }
    value["shared"] = value["i"]  # memo references
    assert loads_plain(pickle.dumps(value, protocol=protocol)) == value


def test_writes_exactly_rq_default_format() -> None:
    data = PlainDataSerializer.dumps(JOB_DATA)
    assert data == DefaultSerializer.dumps(JOB_DATA)  # a stock worker reads it
    assert DefaultSerializer.loads(data) == JOB_DATA
    assert PlainDataSerializer.loads(data) == JOB_DATA


def test_json_payloads_are_read_too() -> None:
    """Jobs queued by cre 0.1 (JSON) or by a JSON producer."""
    raw = json.dumps(list(JOB_DATA)).encode()
    assert PlainDataSerializer.loads(raw) == json.loads(raw)


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    payload = pickle.dumps(("worker.jobs.score_video_job", None, (_TouchesAFile(target),), {}))
    with pytest.raises(PayloadError, match="opcode STACK_GLOBAL"):
        loads_plain(payload)
    assert not target.exists()
    pickle.loads(payload)  # the control: the stock loader does run it
    assert target.exists()


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_old_protocol_globals_are_refused(tmp_path: Path, protocol: int) -> None:
    target = tmp_path / "pwned"
    payload = pickle.dumps(_TouchesAFile(target), protocol=protocol)
    # protocols 0 and 1 have no protocol byte: read as JSON, which they are not
    with pytest.raises(PayloadError):
        loads_plain(payload)
    assert not target.exists()


def test_find_class_refuses_even_without_the_opcode_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layer 2 alone: with every opcode allowed, the unpickler still resolves no global."""
    import worker.payloads

    all_opcodes = frozenset(op.name for op in pickletools.opcodes)
    monkeypatch.setattr(worker.payloads, "PLAIN_OPCODES", all_opcodes)
    target = tmp_path / "pwned"
    with pytest.raises(PayloadError, match=r"names io\.open"):
        loads_plain(pickle.dumps(_TouchesAFile(target)))
    assert not target.exists()


def test_cached_extension_codes_are_refused() -> None:
    """EXT opcodes resolve through copyreg's cache, which skips find_class: refuse them."""
    code = 0x7FFF_FFF0
    copyreg.add_extension("builtins", "len", code)
    try:
        payload = pickle.dumps(len, protocol=2)
        assert any(op.name.startswith("EXT") for op, _, _ in pickletools.genops(payload))
        assert pickle.loads(payload) is len  # now cached: find_class would not be asked
        with pytest.raises(PayloadError, match="opcode EXT"):
            loads_plain(payload)
    finally:
        copyreg.remove_extension("builtins", "len", code)


@pytest.mark.parametrize(
    "value", [b"bytes", bytearray(b"x"), {1, 2}, frozenset({1}), ("ok", b"nested bytes")]
)
def test_data_that_is_not_plain_is_refused(value: object) -> None:
    with pytest.raises(PayloadError):
        loads_plain(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def test_rq_retry_return_value_is_refused() -> None:
    """What a stock worker stores when a job returns rq.Retry: a global, so refused."""
    from rq import Retry

    with pytest.raises(PayloadError, match="STACK_GLOBAL"):
        loads_plain(DefaultSerializer.dumps(Retry(max=2, interval=[1, 2])))


def test_oversized_and_garbage_payloads_are_refused() -> None:
    with pytest.raises(PayloadError, match="over"):
        loads_plain(pickle.dumps("x" * MAX_PAYLOAD_BYTES))
    for junk in (b"\x80\x05garbage", b"\xff\xfe", b"{not json", b""):
        with pytest.raises(PayloadError):
            loads_plain(junk)


def test_recursive_structures_are_walked_once() -> None:
    loop: list[Any] = []
    loop.append(loop)
    out = loads_plain(pickle.dumps(loop, protocol=pickle.HIGHEST_PROTOCOL))
    assert out[0] is out


def test_opcode_allowlist_builds_no_object_and_calls_nothing() -> None:
    refused = {
        "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
        "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER",
    }  # fmt: skip
    known = {op.name for op in pickletools.opcodes}
    assert PLAIN_OPCODES <= known
    assert not PLAIN_OPCODES & refused
