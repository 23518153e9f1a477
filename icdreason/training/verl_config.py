"""verl's own trainer config, read from the installed package, so Hydra overrides can be checked on a laptop.

verl composes ``verl/trainer/config/ppo_trainer.yaml`` with Hydra: a ``defaults:`` list pulls config groups
(``actor@actor_rollout_ref.actor: ${model_engine}_actor``, ``../optim@optim: fsdp``, …) into packages of the final
config. :func:`composed_config` repeats that composition with PyYAML (no Hydra/OmegaConf needed), and
:func:`check_overrides` rejects any override whose key the composed config lacks, with a suggestion.

verl is located with ``importlib.util.find_spec`` and never imported, so ``pip install --no-deps verl`` (a pure-Python
wheel) is enough for these checks; the real run needs verl with its dependencies (docs/training.md).
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import DependencyError, UsageError

__all__ = ["check_overrides", "composed_config", "flat_keys", "verl_config_dir", "verl_version"]

_PACKAGE_HEADER = re.compile(r"^#\s*@package\s+(\S+)", re.MULTILINE)
_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")
_OVERRIDE = re.compile(r"^(?P<prefix>~|\+\+|\+)?(?P<key>[A-Za-z_][\w.\-@/]*)(?:=(?P<value>.*))?$", re.DOTALL)


def verl_config_dir() -> Path:
    """The installed verl's ``trainer/config`` folder (verl is not imported)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            "verl is not installed: on GPU nodes use verl's container image or `pip install verl` in its own "
            "environment; to check launches on a laptop `pip install --no-deps verl` is enough (docs/training.md)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "trainer" / "config"
    if not (folder / "ppo_trainer.yaml").is_file():
        raise DependencyError(f"the installed verl has no trainer/config/ppo_trainer.yaml ({folder}): reinstall verl")
    return folder


def verl_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("verl")
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=4)
def composed_config(config_dir: str | None = None, name: str = "ppo_trainer") -> dict[str, Any]:
    """The trainer config as verl's Hydra would compose it (values unresolved: interpolations stay strings)."""
    root = Path(config_dir) if config_dir else verl_config_dir()
    result: dict[str, Any] = {}
    choices: dict[str, str] = {}
    _compose(root, root / f"{name}.yaml", package="", group_dir=root, result=result, choices=choices)
    return result


def _load(path: Path) -> tuple[dict[str, Any], str | None]:
    import yaml

    text = path.read_text(encoding="utf-8")
    header = _PACKAGE_HEADER.search(text[:500])
    data = yaml.safe_load(text) or {}
    return data, header.group(1) if header else None


def _compose(root: Path, path: Path, *, package: str, group_dir: Path, result: dict, choices: dict) -> None:
    data, header = _load(path)
    if header == "_global_":
        package = ""
    elif header:
        package = header
    defaults = data.pop("defaults", []) or []
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]
    for entry in defaults:
        if entry == "_self_":
            _merge(result, package, copy.deepcopy(data))
            continue
        if isinstance(entry, str):  # a config in the same folder, merged into the same package
            _compose(root, group_dir / f"{entry}.yaml", package=package, group_dir=group_dir, result=result,
                     choices=choices)
            continue
        ((spec, option),) = entry.items()
        group, _, pkg = str(spec).partition("@")
        option = _INTERPOLATION.sub(lambda m: choices.get(m.group(1), m.group(0)), str(option))
        target_dir = (group_dir / group).resolve()
        group_name = target_dir.relative_to(root.resolve()).as_posix()
        choices[group_name] = option
        child_package = pkg if pkg else group_name.replace("/", ".")
        full_package = ".".join(p for p in (package, child_package) if p)
        _compose(root, target_dir / f"{option}.yaml", package=full_package, group_dir=target_dir, result=result,
                 choices=choices)


def _merge(result: dict, package: str, data: dict) -> None:
    node = result
    for part in [p for p in package.split(".") if p]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot merge into non-mapping at {package}")
    _deep_merge(node, data)


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def flat_keys(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": value}`` for every leaf and every mapping of a nested config."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        out[name] = value
        if isinstance(value, dict):
            out.update(flat_keys(value, name + "."))
    return out


def check_overrides(overrides: list[str], config: dict[str, Any] | None = None) -> None:
    """Every ``key=value`` must name a key of verl's config; ``+key`` must not exist yet but its parent must.

    Values are checked where the default's type is plain: a boolean stays a boolean, a number a number.
    """
    config = composed_config() if config is None else config
    keys = flat_keys(config)
    problems = []
    for override in overrides:
        match = _OVERRIDE.match(override)
        if not match:
            problems.append(f"{override!r} is not a Hydra override (key=value)")
            continue
        prefix, key, value = match.group("prefix") or "", match.group("key"), match.group("value")
        parent = key.rpartition(".")[0]
        if prefix in ("+", "++"):
            if parent and not _can_add_under(parent, keys):
                problems.append(f"{override!r}: verl's config has no section {parent!r}{_suggest(parent, keys)}")
            elif prefix == "+" and key in keys:
                problems.append(f"{override!r}: {key} already exists in verl's config, drop the '+'")
            continue
        if key not in keys:
            problems.append(f"{override!r}: verl's config has no key {key!r}{_suggest(key, keys)}")
            continue
        if prefix != "~" and value is not None:
            problem = _type_problem(keys[key], value)
            if problem:
                problems.append(f"{override!r}: {problem}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{problems[0]}{more}; the keys come from the installed verl {verl_version() or ''} "
                         f"(verl/trainer/config/ppo_trainer.yaml)".replace("  ", " "))


#: Free-form mappings verl reads with ``.get`` (Hydra's ``+`` creates them when absent).
_FREE_FORM = {"reward_kwargs", "env_vars", "override_config", "engine_kwargs", "runtime_env", "ray_init"}


def _can_add_under(parent: str, keys: dict[str, Any]) -> bool:
    """A ``+key`` needs an existing section above it, or a free-form mapping of verl's right under one."""
    if isinstance(keys.get(parent), dict):
        return True
    grandparent, _, name = parent.rpartition(".")
    return name in _FREE_FORM and (not grandparent or _can_add_under(grandparent, keys))


def _suggest(key: str, keys: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_problem(default: Any, value: str) -> str | None:
    text = value.strip()
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            return f"expects true or false, got {value!r}"
    elif isinstance(default, (int, float)) and not text.startswith("$"):  # verl's dataclasses type them
        try:
            float(text)
        except ValueError:
            if text.lower() not in ("null", "none"):
                return f"expects a number, got {value!r}"
    elif isinstance(default, dict) and not text.startswith("{") and text.lower() not in ("null", "none"):
        return "is a section, not a value: override one of its keys"
    return None
