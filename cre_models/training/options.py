"""Command-line options from a configuration dataclass (``cre train``, ``cre train-videos``).

:func:`add_option` gives field ``some_name`` of a configuration the option
``--some-name``, typed by the field's annotation and defaulted by the configuration's
value; :func:`config_values` reads the parsed values back. One rule for every type:

============================ ==============================================================
field                        option
============================ ==============================================================
``bool``                     ``--name`` / ``--no-name``, or ``--name true`` / ``false``
``tuple[T, ...]``            one comma-separated value, ``--name a,b,c`` (blanks dropped)
``tuple[T, T]``              as many values as the tuple holds, ``--name 0.5 1.0``
``T | None``                 a ``T`` (the default may be ``None``)
``int``, ``float``, ``str``  one value of that type
============================ ==============================================================
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["add_option", "add_options", "config_values"]


_TRUTH = {"true": True, "yes": True, "on": True, "1": True}
_TRUTH |= {"false": False, "no": False, "off": False, "0": False}


def _truth(text: str) -> bool:
    try:
        return _TRUTH[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(_TRUTH)}") from None


def _comma_separated(item: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        return tuple(item(x.strip()) for x in text.split(",") if x.strip())

    return parse


def _field_type(cls: type, name: str) -> Any:
    """The annotation of field ``name`` of the dataclass ``cls``, less ``| None``."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType):
        kept = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return hint


def add_option(group: Any, config: Any, name: str, **kwargs: Any) -> None:
    """Add the option of field ``name`` of ``config`` to a parser or argument group.

    ``kwargs`` (``help``, ``choices``, ``metavar``...) go to ``add_argument`` as they are.
    """
    flag = "--" + name.replace("_", "-")
    hint = _field_type(type(config), name)
    kwargs.setdefault("default", getattr(config, name))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        kwargs.update(nargs="?", const=True, type=_truth, metavar="BOOL")
        group.add_argument(flag, **kwargs)
        group.add_argument(
            "--no-" + flag[2:], dest=name, action="store_false", help=f"{flag} false"
        )
        return
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        kwargs.setdefault("type", _comma_separated(args[0]))
    elif origin is tuple:
        kwargs.setdefault("nargs", len(args))
        kwargs.setdefault("type", args[0])
    elif hint in (int, float, str):
        kwargs.setdefault("type", hint)
    else:
        raise TypeError(f"no command-line form for {name}: {hint}")
    group.add_argument(flag, **kwargs)


def add_options(group: Any, config: Any, names: Iterable[str]) -> None:
    """:func:`add_option` for each of ``names``, with no extra arguments."""
    for name in names:
        add_option(group, config, name)


def config_values(args: argparse.Namespace, cls: Any) -> dict[str, Any]:
    """The parsed values of the fields of the dataclass ``cls`` that have an option.

    A tuple field read with ``nargs`` (a list) comes back as a tuple.
    """
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name in args}
    for name, value in values.items():
        if isinstance(value, list) and typing.get_origin(_field_type(cls, name)) is tuple:
            values[name] = tuple(value)
    return values
