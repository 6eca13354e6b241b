"""Job payloads in RQ's default format, read back by a loader that builds plain data only.

Jobs go on the queue in RQ's default format (pickle, highest protocol), so a stock
``rq worker cre`` reads them. Our workers and tools read every payload with
:func:`loads_plain` instead of ``pickle.loads``: a crafted payload cannot make them import
or call anything.

What RQ 3.0's default serializer actually writes for a ``cre`` job (measured with
``pickletools`` over every blob a stock worker left in Redis):

* job data ``(func_name, None, (source, options), {})``: string, ``None``, small-int,
  tuple and dict opcodes only; no global, no call;
* job meta (``{"progress": {...}, "abandoned": 1}``) and the return value of a finished job
  (a dict of strings, floats and ``None``): the same, no global;
* the return value of a job that returned ``rq.Retry`` (a transient download failure): a
  pickled ``rq.job.Retry`` object, in the job hash's ``result`` field and its result
  stream. Workers never need it back (RQ's ``Job.restore`` keeps a placeholder when
  ``loads`` fails); only a tool listing a job's results reads it, and gets
  :class:`PayloadError`.

So the loader needs no global at all, and admits none. Three layers, each enough alone:

1. every opcode must be one of :data:`PLAIN_OPCODES` (``pickletools.genops``): no
   ``GLOBAL``/``STACK_GLOBAL``, ``REDUCE``, ``BUILD``, ``INST``/``OBJ``/``NEWOBJ``,
   extension codes (whose cache bypasses ``find_class``), persistent ids, bytes or sets;
2. the unpickler's ``find_class`` and ``persistent_load`` refuse everything;
3. the result is walked and must contain only ``str``, ``int``, ``float``, ``bool``,
   ``None``, ``list``, ``tuple`` and ``dict``.

A payload that does not start with the pickle protocol byte is read as JSON (jobs queued
by ``cre`` 0.1 or by a JSON producer), then checked by layer 3.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import pickletools
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

from rq.serializers import DefaultSerializer

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PLAIN_OPCODES",
    "PLAIN_TYPES",
    "PayloadError",
    "PlainDataSerializer",
    "loads_plain",
    "check_plain",
]

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 1 << 20
"""Largest payload read (1 MiB); a ``cre`` job's data is a few hundred bytes."""

PLAIN_OPCODES = frozenset(
    {
        # framing and the stack
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
        # memo (shared references, e.g. the same string twice)
        "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MEMOIZE",
        # None, bool, int, float
        "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG",
        "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        # str
        "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
        # list, tuple, dict
        "EMPTY_LIST", "APPEND", "APPENDS", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1",
        "TUPLE2", "TUPLE3", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    }
)  # fmt: skip
"""Pickle opcodes that build plain data; any other opcode refuses the payload."""

PLAIN_TYPES: tuple[type, ...] = (str, int, float, bool, type(None), list, tuple, dict)
"""The only types a payload may decode to (exact types, not subclasses)."""


class PayloadError(ValueError):
    """A payload that is not plain data (or not readable): refused, nothing was run."""


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global and no persistent id."""

    def find_class(self, module: str, name: str) -> NoReturn:
        raise PayloadError(f"the payload names {module}.{name}: only plain data is accepted")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise PayloadError("the payload uses a persistent id: only plain data is accepted")


def _check_opcodes(data: bytes) -> None:
    try:
        for opcode, arg, pos in pickletools.genops(data):
            if opcode.name not in PLAIN_OPCODES:
                what = f" {arg}" if isinstance(arg, str) and opcode.name == "GLOBAL" else ""
                raise PayloadError(
                    f"pickle opcode {opcode.name}{what} at byte {pos}: only plain data "
                    "(str, int, float, bool, None, list, tuple, dict) is accepted"
                )
    except PayloadError:
        raise
    except Exception as e:  # genops raises ValueError and friends on malformed input
        raise PayloadError(f"not a readable pickle: {e}") from e


def check_plain(obj: Any) -> None:
    """Raise :class:`PayloadError` unless ``obj`` holds only :data:`PLAIN_TYPES`.

    Walks the object iteratively (deep nesting cannot exhaust the stack) and visits each
    container once (shared references cannot make it exponential).
    """
    stack = [obj]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if type(item) not in PLAIN_TYPES:
            raise PayloadError(f"the payload holds a {type(item).__name__}: only plain data")
        if isinstance(item, list | tuple | dict):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(item)


def loads_plain(data: bytes) -> Any:
    """Decode a payload (pickle or JSON) that must be plain data; see the module docstring.

    Raises:
        PayloadError: anything else (a global, a call, bytes, a set), an unreadable
            payload, or one larger than :data:`MAX_PAYLOAD_BYTES`. Nothing in the payload
            has been imported or called when this is raised.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PayloadError(f"a payload is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(data)} bytes is over {MAX_PAYLOAD_BYTES}")
    if data[:1] == b"\x80":  # pickle protocol >= 2
        _check_opcodes(data)
        try:
            obj = _PlainUnpickler(io.BytesIO(data)).load()
        except PayloadError:
            raise
        except Exception as e:
            raise PayloadError(f"not a readable pickle: {e}") from e
    else:
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise PayloadError(f"neither a pickle of plain data nor JSON: {e}") from e
    check_plain(obj)
    return obj


class PlainDataSerializer:
    """RQ serializer: writes RQ's default format, reads with :func:`loads_plain`.

    ``dumps`` is RQ's own (``pickle.dumps`` at the highest protocol), so stock workers and
    ``cre`` workers share one queue; ``loads`` never runs code from Redis.
    """

    dumps: ClassVar[Callable[[Any], bytes]] = DefaultSerializer.dumps
    loads: ClassVar[Callable[[bytes], Any]] = staticmethod(loads_plain)
