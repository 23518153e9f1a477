"""The one settings base: engine options, sampling and predict settings, training configs are dataclasses on it.

A subclass declares each field with :func:`option` (a default and a help string, trl-style); validation and derived
values live in ``__post_init__``, except defaults that depend on the machine (CUDA devices): those are filled in by an
explicit step the caller runs (the training configs' ``resolve(devices=...)``), so building settings stays light. :meth:`Settings.load` reads a YAML file (optional) and applies overrides on top,
:meth:`Settings.from_dict` builds from any mapping (YAML, ``--set``/``-E KEY=VALUE`` strings, verl ``reward_kwargs``)
and :meth:`Settings.from_env` from ``<env_prefix><FIELD>`` variables. All of them reject unknown keys with a message
that names the known ones, accept renamed keys for one release (a deprecation line on stderr) and coerce strings to
each field's type (``true/false``, numbers, ``a,b,c`` lists, paths, ``none`` for optional fields).

Each value remembers where it came from (:meth:`Settings.origins`: ``default``, the YAML file, the variable, the flag
…), and a subclass may derive defaults from other settings (:meth:`Settings.derive`: the reward presets) that
layering derives afresh. The error messages are classmethods a subclass may word for its users.

The CLI builds its flags and ``--help-config`` from the same metadata (:meth:`Settings.help_for`,
:meth:`Settings.type_label`, :meth:`Settings.describe`), so a help text is written once.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import InputError, UsageError

__all__ = ["Settings", "coerce", "format_value", "option", "parse_assignments"]

S = TypeVar("S", bound="Settings")

_NONE_WORDS = ("", "none", "null")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def option(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,  # noqa: A002
           **extra: Any) -> Any:
    """A settings field with a default and a help string; ``extra`` goes into the metadata too (e.g. ``min``/``max``
    bounds that the CLI flag of the field enforces). Lists and dicts are copied per instance; ``factory`` computes
    a default when an instance is made (e.g. from an environment variable)."""
    if not help:
        raise TypeError("option() needs a help text")
    metadata = {"help": help, **extra}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return field(default=default, metadata=metadata)


def parse_assignments(items: list[str] | None, *, flag: str = "--set") -> dict[str, str]:
    """``["lr=1e-5", "lora=true"]`` -> ``{"lr": "1e-5", "lora": "true"}`` (dashes in keys become underscores); a
    missing ``=`` is a usage error naming ``flag``. Values stay strings: :meth:`Settings.from_dict` coerces them."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


@dataclass
class Settings:
    """Base class of every settings dataclass (it declares no fields itself)."""

    #: Old key -> current field name: still accepted (with a deprecation line on stderr) for one release.
    renamed: ClassVar[dict[str, str]] = {}
    #: Prefix of the environment variables :meth:`from_env` reads (``ICDREASON_REWARD_`` -> ``ICDREASON_REWARD_X``).
    env_prefix: ClassVar[str] = ""
    #: A YAML file may hold the settings under this top-level key (e.g. ``reward:``); None: at the top level.
    yaml_section: ClassVar[str | None] = None
    #: The command whose ``--help-config`` lists the keys (named by the unknown-key error); "": the error lists them.
    help_command: ClassVar[str] = ""

    # -- the fields and their help -------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return list(_names(cls))

    @classmethod
    def field_of(cls, name: str) -> dataclasses.Field:
        """The dataclass field ``name`` (KeyError if there is none)."""
        if name not in _names(cls):
            raise KeyError(name)
        return cls.__dataclass_fields__[name]  # type: ignore[attr-defined]

    @classmethod
    def help_for(cls, name: str) -> str:
        """The help string of one field."""
        return cls.field_of(name).metadata.get("help", "")

    @classmethod
    def type_of(cls, name: str) -> Any:
        """The field's type, resolved (``int | None``, ``list[str]``, ``Path`` …)."""
        return _hint(cls, name)

    @classmethod
    def type_label(cls, name: str) -> str:
        """How a user types a value of the field: ``true/false``, ``INTEGER``, ``FLOAT``, ``TEXT``, ``PATH``,
        ``a,b,c``."""
        key = (cls, name)
        if key not in _LABELS:
            _LABELS[key] = type_label(cls.type_of(name))
        return _LABELS[key]

    @classmethod
    def default_of(cls, name: str) -> Any:
        f = cls.field_of(name)
        if f.default is not MISSING:
            return f.default
        if f.default_factory is not MISSING:  # type: ignore[misc]
            return f.default_factory()  # type: ignore[misc]
        return MISSING

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(name, default as a user types it, help) for every field, for ``--help-config``."""
        rows = []
        for name in cls.field_names():
            default = cls.default_of(name)
            rows.append((name, "(required)" if default is MISSING else format_value(default), cls.help_for(name)))
        return rows

    # -- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[S], values: Mapping[str, Any] | None, *, base: S | None = None,
                  source: str = "the settings", origin: str | Mapping[str, str] | None = None) -> S:
        """Build from a mapping (on top of ``base``'s values when given): unknown keys are an error, renamed keys
        are accepted with a deprecation line, strings are coerced to the field types, ``-`` in keys reads as ``_``.

        ``origin`` labels the new values for :meth:`origins` (one label, or one per key; default: ``source``).
        ``base``'s values are kept unless ``values`` sets them again, except the defaults it derived
        (:meth:`derive`), which are derived afresh (so a new reward preset brings its own values).
        """
        known = cls.field_names()
        given: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for key, value in (values or {}).items():
            name = str(key).replace("-", "_")
            if name not in known and name in cls.renamed:
                new = cls.renamed[name]
                print(f"warning: {name} is deprecated, use {new} (the old name stops working in the next release)",
                      file=sys.stderr, flush=True)
                name = new
            given[name] = value
            labels[name] = origin.get(key, source) if isinstance(origin, Mapping) else origin or source
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UsageError(cls.unknown_keys_message(unknown, source))
        merged: dict[str, Any] = {}
        if base is not None:
            base_labels, derived = base._tracking()
            merged = {n: getattr(base, n) for n in known if n not in derived}
            labels = {**{n: o for n, o in base_labels.items() if n not in derived}, **labels}
        merged.update({name: cls.coerce_field(name, value) for name, value in given.items()})
        settings = cls(**merged)
        own_labels, own_derived = settings._tracking()
        own_labels.update(labels)
        own_derived.difference_update(labels)
        return settings

    @classmethod
    def from_sources(cls: type[S], settings: Mapping[str, tuple[Any, str]], *, base: S | None = None,
                     source: str = "the settings") -> S:
        """:meth:`from_dict` with an origin per value (``name -> (value, origin)``), applied together: settings
        that depend on each other may come from different flags or variables of one layer."""
        return cls.from_dict({k: v for k, (v, _) in settings.items()}, base=base, source=source,
                             origin={k: o for k, (_, o) in settings.items()})

    @classmethod
    def coerce_field(cls, name: str, value: Any) -> Any:
        """``value`` in the type of field ``name`` (:func:`coerce`), errors worded by :meth:`bad_value_message`."""
        return coerce(name, value, _hint(cls, name), cls.bad_value_message)

    @classmethod
    def unknown_keys_message(cls, unknown: list[str], source: str) -> str:
        """The one-line error for keys the class does not have (subclasses may word it for their users)."""
        known = cls.field_names()
        if cls.help_command:
            hint = f"`{cls.help_command} --help-config` lists the {len(known)} known keys"
        else:
            hint = f"known: {', '.join(known) or 'none'}"
        return f"unknown key(s) in {source}: {', '.join(unknown)} ({hint})"

    @classmethod
    def bad_value_message(cls, name: str, value: Any, expected: Any) -> str:
        """The one-line error for a value that is not of the field's type ``expected`` (None: no value given)."""
        return _expected(name, value, expected)

    @classmethod
    def file_error_message(cls, path: Path, problem: str, detail: str = "") -> str:
        """The one-line error for a settings file: ``problem`` is ``missing``, ``invalid`` (not YAML; ``detail``:
        the parser's first line) or ``not a mapping`` (``detail``: the type the file holds)."""
        if problem == "missing":
            return f"config file not found: {path}"
        if problem == "invalid":
            return f"{path} is not valid YAML: {detail}"
        return f"{path} must hold a mapping of config keys to values, not a {detail}"

    @classmethod
    def load(cls: type[S], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
             base: S | None = None, origin: str | None = None) -> S:
        """Fields from a YAML file (optional; their origin ``origin``, default ``YAML <path>``), then ``overrides``
        on top (origin ``override``; ``None`` values are ignored)."""
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        if path is not None:
            values.update(cls.read_yaml(path))
            labels = dict.fromkeys(values, origin or f"YAML {Path(path)}")
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key.replace("-", "_")] = value
                labels[key.replace("-", "_")] = "override"
        return cls.from_dict(values, base=base, source=str(path) if path is not None else "the overrides",
                             origin=labels)

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None, *, base: S | None = None) -> S:
        """``base`` (or the defaults), then the YAML file named by ``<env_prefix>CONFIG``, then one
        ``<env_prefix><FIELD>`` variable per field (``ICDREASON_REWARD_JUDGE_URL=…``), applied together. Origins:
        ``YAML <file> ($<env_prefix>CONFIG)`` and ``env <VARIABLE>``."""
        import os

        if not cls.env_prefix:
            raise TypeError(f"{cls.__name__} reads no environment variables (no env_prefix)")
        env = os.environ if environ is None else environ
        settings = base if base is not None else cls()
        config_file = env.get(f"{cls.env_prefix}CONFIG")
        if config_file and "config" not in cls.field_names():
            settings = cls.load(config_file, base=settings, origin=f"YAML {config_file} (${cls.env_prefix}CONFIG)")
        variables = {n: f"{cls.env_prefix}{n.upper()}" for n in cls.field_names()}
        found = {n: (env[var], f"env {var}") for n, var in variables.items() if var in env}
        if not found:
            return settings
        return cls.from_sources(found, base=settings, source=f"the {cls.env_prefix}* environment variables")

    @classmethod
    def read_yaml(cls, path: str | Path) -> dict[str, Any]:
        """The mapping a YAML file holds (under :attr:`yaml_section` when the file has that key)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InputError(cls.file_error_message(path, "missing"))
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(cls.file_error_message(path, "invalid", str(exc).splitlines()[0])) from None
        if data is None:
            return {}
        if cls.yaml_section and isinstance(data, dict) and isinstance(data.get(cls.yaml_section), dict):
            data = data[cls.yaml_section]
        if not isinstance(data, dict):
            raise InputError(cls.file_error_message(path, "not a mapping", type(data).__name__))
        return {str(k).replace("-", "_"): v for k, v in data.items()}

    # -- where each value came from ----------------------------------------------------------------------------------
    def origins(self) -> dict[str, str]:
        """Where each value came from: the origin of the layer that set it (``YAML run.yaml``, ``env
        ICDREASON_REWARD_X``, ``flag --set``, ``verl reward_kwargs`` …), the label of a derived default
        (:meth:`derive`, e.g. ``preset deepicd-r1``), else ``default`` (the field's default) or ``argument`` (a
        value passed to the constructor or set in code)."""
        labels, _ = self._tracking()
        out = {}
        for name in self.field_names():
            default = self.default_of(name)
            out[name] = labels.get(name) or ("default" if default is not MISSING and getattr(self, name) == default
                                             else "argument")
        return out

    def derive(self, name: str, value: Any, origin: str) -> None:
        """Fill field ``name`` with a default that depends on other settings (from ``__post_init__``), labelled
        ``origin``; layering (:meth:`from_dict` with ``base=``) derives it afresh instead of carrying it."""
        labels, derived = self._tracking()
        setattr(self, name, value)
        labels[name] = origin
        derived.add(name)

    def _tracking(self) -> tuple[dict[str, str], set[str]]:
        """The origin labels set so far and the names of derived defaults (kept beside the fields, not as fields,
        so equality, ``repr`` and ``to_dict`` see only the values)."""
        return self.__dict__.setdefault("_origins", {}), self.__dict__.setdefault("_derived", set())

    def help_table(self) -> list[tuple[str, Any, str]]:
        """(name, value, help) for every field: what a listing of the settings in use shows."""
        return [(name, getattr(self, name), self.help_for(name)) for name in self.field_names()]

    # -- output ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain values in field order (paths as strings, tuples as lists): what YAML and JSON take."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: Path) -> Path:
        """Write the settings as YAML (atomically); :meth:`load` reads them back to the same settings."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)
        return path


# -- types and values --------------------------------------------------------------------------------------------
# Per-class caches: the CLI asks for the same fields' help and types many times while it builds its commands.
_NAMES: dict[type, tuple[str, ...]] = {}
_HINTS: dict[tuple[type, str], Any] = {}
_LABELS: dict[tuple[type, str], str] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


def _hint(cls: type, name: str) -> Any:
    """The resolved annotation of one field: only that one is evaluated (the CLI asks for a few fields of large
    classes while it starts, so resolving them all with ``typing.get_type_hints`` would cost start-up time)."""
    key = (cls, name)
    if key not in _HINTS:
        for klass in cls.__mro__:
            annotation = klass.__dict__.get("__annotations__", {}).get(name)
            if annotation is not None:
                if isinstance(annotation, str):  # postponed (``from __future__ import annotations``)
                    annotation = eval(annotation, vars(sys.modules[klass.__module__]), dict(vars(klass)))  # noqa: S307
                _HINTS[key] = annotation
                break
        else:
            raise KeyError(name)
    return _HINTS[key]


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); other types -> (the type, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return hint, False


def type_label(hint: Any) -> str:
    """How a user types a value of this type (the CLI's metavar style)."""
    hint, _ = _split_optional(hint)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple, set, frozenset):
        return "a,b,c"
    if origin is dict:
        return "{key: value}"
    return {bool: "true/false", int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}.get(hint, "TEXT")


def format_value(value: Any) -> str:
    """A value written the way a user would type it: ``true``, ``none``, ``a,b``, ``runs/sft``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _expected(name: str, value: Any, expected: Any) -> str:
    return f"{name}: expected {_type_name(expected)}, got {'no value' if value is None else repr(value)}"


def coerce(name: str, value: Any, hint: Any, message: Callable[[str, Any, Any], str] = _expected) -> Any:
    """Turn a YAML, flag or environment value into the field's type; strings (``KEY=VALUE``) are parsed.

    ``true/false/yes/no/on/off/1/0`` for booleans, numbers for int and float, ``a,b,c`` (or a YAML list ``[a, b]``)
    for lists and tuples, a YAML/JSON mapping for dicts, ``none``/``null``/empty for optional fields. A value that
    does not fit is a usage error worded by ``message(name, value, expected type)``.
    """
    inner, optional = _split_optional(hint)
    if optional and (value is None or isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return None
    if value is None:
        raise UsageError(message(name, None, inner))
    try:
        return _coerce(name, value, inner, message)
    except (TypeError, ValueError):
        raise UsageError(message(name, value, inner)) from None


def _coerce(name: str, value: Any, hint: Any, message: Callable[[str, Any, Any], str]) -> Any:
    origin = typing.get_origin(hint) or hint
    if hint is str:
        if isinstance(value, (list, tuple, dict)):
            raise ValueError
        return str(value)
    if hint is Path:
        return Path(str(value)).expanduser()
    if hint is bool:
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, bool):
            return value
        raise ValueError
    if hint is int:
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                value = float(text)
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    if hint is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value.strip() if isinstance(value, str) else value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = _yaml(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",")
                                                                          if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        args = typing.get_args(hint)
        item = args[0] if args and (origin is list or len(args) == 2 and args[1] is Ellipsis) else None
        items = [coerce(name, v, item, message) for v in value] if item is not None else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if isinstance(value, str):
            value = _yaml(value)
        if not isinstance(value, dict):
            raise ValueError
        return dict(value)
    return value


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(text) from None
