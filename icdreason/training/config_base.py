"""Run configs as dataclasses: every field has a default and a help string; a YAML file supplies fields, flags override.

The shape follows trl's configs. A subclass declares fields with :func:`option` (default + help); derived defaults
and validation live in ``__post_init__``. :meth:`RunConfig.load` reads ``--config run.yaml``, applies command-line
overrides on top, rejects unknown keys, and coerces strings (from ``--set key=value``) to each field's type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InputError, UsageError

__all__ = ["RunConfig", "option", "parse_assignments"]

C = TypeVar("C", bound="RunConfig")


def option(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - "help" is the metadata key trl uses too
    """A config field with a default and a help string (lists and dicts are copied per instance)."""
    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return field(default=default, metadata=metadata)


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``["lr=1e-5", "lora=true"]`` -> ``{"lr": "1e-5", "lora": "true"}``; a missing ``=`` is a usage error."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


@dataclass
class RunConfig:
    """Base class of the training run configs."""

    command: typing.ClassVar[str] = ""  # the `icdreason train` subcommand, for messages

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def help_for(cls, name: str) -> str:
        """The help string of one field."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata.get("help", "")
        raise KeyError(name)

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
        """Fields from a YAML file (optional), then ``overrides`` on top (``None`` values are ignored)."""
        values: dict[str, Any] = {}
        if path is not None:
            values.update(_read_yaml(Path(path)))
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key.replace("-", "_")] = value
        return cls.from_dict(values, source=str(path) if path else "the overrides")

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], *, source: str = "the config") -> C:
        """Build a config from a mapping, rejecting unknown keys and coercing strings to the field types."""
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UsageError(
                f"unknown key(s) in {source}: {', '.join(unknown)} "
                f"(`icdreason train {cls.command} --help-config` lists the {len(known)} known keys)"
            )
        kwargs = {name: _coerce(name, value, hints[name]) for name, value in values.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), in field order."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: Path) -> Path:
        """Write the resolved config as YAML (atomically); it loads back to the same config."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(name, default, help) for every field, for ``--help-config``."""
        rows = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f.name, repr(default), f.metadata.get("help", "")))
        return rows


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of config keys to values, not a {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Turn YAML/flag values into the field's type; strings from ``--set`` are parsed as YAML scalars first."""
    import yaml

    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    if optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        hint = args[0] if len(args) == 1 else hint
        origin = typing.get_origin(hint)
    if value is None:
        return None
    if hint is str:
        return str(value)
    if hint is Path:
        return Path(str(value)).expanduser()
    if isinstance(value, str) and hint in (bool, int, float) or (isinstance(value, str) and origin is list):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            (item,) = typing.get_args(hint) or (str,)
            return [_coerce(name, v, item) for v in value]
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected {_type_name(hint)}, got {value!r}") from None
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
