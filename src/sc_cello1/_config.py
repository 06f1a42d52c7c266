"""One config per verb: frozen dataclasses whose fields carry type, default, help and check.

The machinery behind the settings of ``tl.annotate``, ``tl.solve`` and ``tl.benchmark``
(and the trainers' command line), in the manner of trl's ``*Config`` dataclasses and
``TrlParser``, scanpy's ``Literal`` option types and shared docstrings:

- :func:`option` declares a field: its default, its help text, a check, and whether the
  command line offers it. Its type is the annotation; a ``Literal`` gives the choices.
- :class:`VerbConfig` is the base: building one checks every field (choices, booleans,
  integers, the field's own check) with a message that names the field and the fix;
  :meth:`VerbConfig.from_call` takes a function's keywords, old names included (a
  FutureWarning for one release); :meth:`VerbConfig.params` is what ``uns[key]
  ['params']`` records.
- :func:`add_config_options` builds ``argparse`` options from the fields, with the
  field's default (no copied default, no missing flag) and ``choices`` from the
  ``Literal``; :func:`config_from_args` reads them back.
- :func:`doc_params` fills shared parameter text, written once in :data:`SHARED_DOCS`,
  into docstrings (scanpy's ``_doc_params``; they live in :mod:`sc_cello1._docs`).

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from ._docs import SHARED_DOCS, doc_params

__all__ = [
    "SHARED_DOCS",
    "VerbConfig",
    "add_config_options",
    "choices_of",
    "config_from_args",
    "doc_params",
    "option",
]

C = TypeVar("C", bound="VerbConfig")

#: A check returns ``None`` when the value is fine, else a sentence saying what to pass.
Check = Callable[[Any], "str | None"]

_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    check: Check | None = None,
    cli: bool = True,
    flag: str | tuple[str, ...] | None = None,
    factory: Callable[[], Any] | None = None,
    params: bool = True,
    validate: Callable[[Any], Any] | None = None,
    record: Callable[[Any], Any] | None = None,
    cli_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a field of a :class:`VerbConfig`.

    Parameters
    ----------
    default
        The default value (immutable; use ``factory`` for a list or dict).
    help
        One or two sentences for the docs and the command line's ``--help``.
    check
        Called with the value when a config is built: ``None`` if it is fine, else a
        sentence saying what to pass instead (raised as :class:`ValueError`).
    cli
        Whether the command line offers the field (``False`` for Python objects such as
        a callable or a backend).
    flag
        The command-line flag (or flags, such as ``("-o", "--output-dir")``); default
        ``--`` and the field name with dashes.
    factory
        Builds the default (for mutable defaults).
    params
        Whether :meth:`VerbConfig.params` records the field.
    validate
        Called with the value in place of the checks of its type (choices, bool, int):
        it raises its own error (the checks a verb had before it had a config, whose
        messages users know); its return value is ignored. ``check`` still runs after.
    record
        How :meth:`VerbConfig.params` records the value (``describe`` for a Python
        object, ``redact`` for keywords that may hold secrets); default: as it is,
        JSON-friendly.
    cli_kwargs
        Further ``add_argument`` keywords (``nargs``, ``metavar``, ``type``,
        ``required``), for a field whose type is wider than what a command line gives
        (a model: a name or a Python object).

    Returns
    -------
    A :func:`dataclasses.field`.
    """
    metadata = {
        "help": help,
        "check": check,
        "cli": cli,
        "flag": flag,
        "params": params,
        "validate": validate,
        "record": record,
        "cli_kwargs": dict(cli_kwargs or {}),
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return get_args(tp)
    return (tp,)


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """Return the values a ``Literal`` type (or ``Literal[...] | None``) allows, else ``None``.

    Examples
    --------
    >>> from typing import Literal
    >>> choices_of(Literal["a", "b"] | None)
    ('a', 'b')
    """
    found: list[Any] = []
    for arg in _union_args(tp):
        if get_origin(arg) is Literal:
            found += list(get_args(arg))
    return tuple(found) if found else None


def _optional(tp: Any) -> bool:
    return type(None) in _union_args(tp)


def _base(tp: Any) -> Any:
    """Return the type without ``None`` (``int | None`` -> ``int``), or ``tp`` if several remain."""
    rest = [a for a in _union_args(tp) if a is not type(None)]
    return rest[0] if len(rest) == 1 else tp


def _check_type(name: str, value: Any, tp: Any) -> tuple[type[Exception], str] | None:
    """Return the error for a ``value`` that does not fit ``tp`` (choices, bool, int, float, str)."""
    if value is None:
        ok = tp is Any or _optional(tp)
        return None if ok else (TypeError, f"`{name}` must not be None.")
    allowed = choices_of(tp)
    if allowed is not None:
        ok = any(value == a and type(value) is type(a) for a in allowed)
        other = [a for a in _union_args(tp) if get_origin(a) is not Literal]
        if ok or any(_fits(value, a) for a in other if a is not type(None)):
            return None
        choices = ", ".join(map(repr, allowed))
        return ValueError, f"`{name}={value!r}` is not valid; use one of {choices}."
    base = _base(tp)
    if base in (bool, int, float, str) and not _fits(value, base):
        return TypeError, f"`{name}` must be {base.__name__}, got {type(value).__name__} {value!r}."
    return None


def _fits(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return True  # other types: the field's own check decides


@dataclasses.dataclass(frozen=True)
class VerbConfig:
    """Base of the per-verb configs: checked fields, old keywords, params.

    Subclasses are frozen dataclasses whose fields are declared with :func:`option`;
    ``_OLD_NAMES`` maps a previous release's keyword to its field (accepted by
    :meth:`from_call` with a FutureWarning), and ``_VERB`` names the function the config
    belongs to, for messages.
    """

    _OLD_NAMES: ClassVar[Mapping[str, str]] = {}
    _VERB: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        where = f"{self._VERB or type(self).__name__}: "
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            validate = f.metadata.get("validate")
            if validate is not None:
                validate(value)  # the field's own checks, in place of those of its type
            else:
                problem = _check_type(f.name, value, hints[f.name])
                if problem is not None:
                    raise problem[0](where + problem[1])
            check = f.metadata.get("check")
            if check is not None and value is not None:
                sentence = check(value)
                if sentence is not None:
                    raise ValueError(f"{where}`{f.name}={value!r}`: {sentence}")

    @classmethod
    def field_names(cls) -> list[str]:
        """Return the names of the fields, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_call(cls: type[C], **kwargs: Any) -> C:
        """Build the config from a function's keywords; old names warn, unknown ones raise.

        The keyword signature of a verb stays (scanpy's contract) and calls this first,
        before any work, so bad input fails early with a message naming the keyword.

        Raises
        ------
        TypeError
            An unknown keyword, or an old name given together with its new name.
        """
        return cls._from_kwargs(kwargs, stacklevel=4)

    @classmethod
    def from_locals(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build the config from a verb's ``locals()`` (every keyword of its signature).

        An old keyword left at ``None`` (the signature's default) is dropped; one that is
        given replaces its new name when that is at its default (a FutureWarning), and
        both given raise. Call it first in the verb, before any other local is made.
        """
        kwargs = dict(values)
        for old, new in cls._OLD_NAMES.items():
            if old not in kwargs:
                continue
            if kwargs[old] is None:
                del kwargs[old]
            elif new in kwargs and kwargs[new] == _default(_field(cls, new)):
                del kwargs[new]
        return cls._from_kwargs(kwargs, stacklevel=4)

    @classmethod
    def _from_kwargs(cls: type[C], kwargs: dict[str, Any], *, stacklevel: int) -> C:
        # stacklevel: frames between rename_keywords' caller and the user's call
        kwargs = rename_keywords(cls, kwargs, stacklevel=stacklevel)
        names = set(cls.field_names())
        unknown = sorted(set(kwargs) - names)
        if unknown:
            msg = (
                f"{cls._VERB or cls.__name__}() got unknown keyword(s) {unknown}; the settings "
                f"are: {', '.join(cls.field_names())}."
            )
            raise TypeError(msg)
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with some fields changed, checked again."""
        return type(self).from_call(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Return every field as it is (no copy of the values)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def params(self) -> dict[str, Any]:
        """Return what ``uns[key_added]['params']`` records: the fields, JSON-friendly.

        Paths become strings, tuples lists, mappings dicts; fields declared with
        ``params=False`` (Python objects such as a backend) are left out.
        """
        out = {}
        for f in dataclasses.fields(self):
            if not f.metadata.get("params", True):
                continue
            value = getattr(self, f.name)
            record = f.metadata.get("record")
            out[f.name] = _jsonable(value if record is None or value is None else record(value))
        return out


def rename_keywords(
    cls: type[VerbConfig], kwargs: dict[str, Any], *, stacklevel: int = 2
) -> dict[str, Any]:
    """Map old keywords in ``kwargs`` to their new names, with one FutureWarning.

    Raises
    ------
    TypeError
        If an old keyword and its new name are both given.
    """
    used = [k for k in kwargs if k in cls._OLD_NAMES]
    if not used:
        return kwargs
    out = dict(kwargs)
    for old in used:
        new = cls._OLD_NAMES[old]
        if new in out:
            msg = f"{cls._VERB or cls.__name__}() got both {old}= (old name) and {new}=; pass only {new}=."
            raise TypeError(msg)
        out[new] = out.pop(old)
    pairs = ", ".join(f"{o}= -> {cls._OLD_NAMES[o]}=" for o in used)
    warnings.warn(
        f"{cls._VERB or cls.__name__}(): {pairs}: the old keyword(s) will be removed in the next "
        "release.",
        FutureWarning,
        stacklevel=stacklevel + 1,
    )
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- CLI


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"not valid JSON: {e}"
        raise argparse.ArgumentTypeError(msg) from e
    if not isinstance(value, dict):
        msg = "expected a JSON object such as '{\"key\": 1}'"
        raise argparse.ArgumentTypeError(msg)
    return value


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _flags(f: dataclasses.Field) -> tuple[str, ...]:
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return (flag,) if isinstance(flag, str) else tuple(flag)


def _argument(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """Return the ``add_argument`` keywords that parse field ``f`` of type ``tp``."""
    given = f.metadata.get("cli_kwargs") or {}
    if "type" in given or "action" in given:
        return dict(given)
    return {**_parse(f, tp), **given}


def _parse(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    allowed = choices_of(tp)
    base = _base(tp)
    origin = get_origin(base)
    if allowed is not None:
        kinds = {type(a) for a in allowed}
        return {"choices": list(allowed), "type": kinds.pop() if len(kinds) == 1 else str}
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base in (int, float, str):
        return {"type": base}
    if base is Path:
        return {"type": Path}
    if origin in (dict, Mapping) or base is dict:
        return {"type": _json_object, "metavar": "JSON"}
    if origin in (tuple, list, Sequence) or base in (tuple, list):
        return {"type": _comma_list, "metavar": "A,B,..."}
    msg = (
        f"the command line cannot parse field {f.name!r} of type {tp!r}; declare it with "
        "option(..., cli=False) or give it a simple type."
    )
    raise TypeError(msg)


def add_config_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Sequence[str] = (),
    only_given: bool = False,
) -> list[str]:
    """Add one option per command-line field of ``cls`` to ``parser``.

    The default is the field's own (shown in ``--help``), the choices those of its
    ``Literal`` type, booleans get ``--x/--no-x``. The previous release's keywords get
    hidden flags that :func:`config_from_args` maps with a FutureWarning.

    Parameters
    ----------
    parser
        A parser or an argument group.
    cls
        The config class: a :class:`VerbConfig`, or any dataclass whose fields carry
        ``metadata={"help": ...}`` (the trainers' configs), with an optional
        ``_OLD_NAMES`` mapping.
    skip
        Fields the caller adds itself (positional arguments, say).
    only_given
        Leave options that are not given out of the namespace (``argparse.SUPPRESS``)
        instead of filling in the default, so that only what the user typed overrides.

    Returns
    -------
    The names of the fields added.
    """
    hints = typing.get_type_hints(cls)
    added = []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for f in fields.values():
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        default = _default(f)
        text = f.metadata.get("help", "")
        if (f.metadata.get("cli_kwargs") or {}).get("required"):
            pass
        elif not only_given:
            text += " (default: %(default)s)"
        else:
            text += f" (default: {default!r})".replace("%", "%%")
        kwargs = {
            "dest": f.name,
            "default": argparse.SUPPRESS if only_given else default,
            "help": text,
            **_argument(f, hints[f.name]),
        }
        parser.add_argument(*_flags(f), **kwargs)
        added.append(f.name)
    for old, new in getattr(cls, "_OLD_NAMES", {}).items():
        if new in added:
            extra = _argument(fields[new], hints[new])
            extra.pop("required", None)
            parser.add_argument(
                "--" + old.replace("_", "-"),
                dest=f"_old_{old}",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
                **extra,
            )
    return added


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def config_kwargs_from_args(
    args: argparse.Namespace, cls: type, *, only_given: bool = False
) -> dict[str, Any]:
    """Return the config keywords in ``args``; old flags are mapped with a FutureWarning.

    ``only_given`` as given to :func:`add_config_options`: then a field in ``args`` was
    typed by the user (else it may be its default).

    Raises
    ------
    ValueError
        An old flag and its new one were both given.
    """
    given = vars(args)
    out = {f.name: given[f.name] for f in dataclasses.fields(cls) if f.name in given}
    for old, new in getattr(cls, "_OLD_NAMES", {}).items():
        if f"_old_{old}" not in given:
            continue
        flag, new_flag = "--" + old.replace("_", "-"), "--" + new.replace("_", "-")
        if new in out and (only_given or out[new] != _default(_field(cls, new))):
            msg = f"both {flag} (old name) and {new_flag} were given; pass only {new_flag}."
            raise ValueError(msg)
        warnings.warn(
            f"{flag} is deprecated and will be removed in the next release; use {new_flag}.",
            FutureWarning,
            stacklevel=2,
        )
        out[new] = given[f"_old_{old}"]
    return out


def config_from_args(args: argparse.Namespace, cls: type[C], **extra: Any) -> C:
    """Build ``cls`` from parsed arguments (see :func:`add_config_options`) and ``extra``."""
    return cls.from_call(**{**config_kwargs_from_args(args, cls), **extra})


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)
