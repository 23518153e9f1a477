"""Model names: the DeepICD-R1 aliases, Hugging Face hub ids and local directories, resolved to weights on disk.

``resolve_model("DeepICD-R1-7B")`` maps the alias to ``DATEXIS/DeepICD-R1-7B``, then finds the weights: a local
directory is used as it is; a hub id is looked up in the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``) and,
unless ``HF_HUB_OFFLINE`` is set, downloaded. Weights that are neither present nor downloadable raise a one-line
:class:`~icdreason.errors.EngineError` that names the path or id and the fix.

Only :mod:`huggingface_hub` is imported, and only when a hub id has to be looked up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import EngineError

#: Short names of the released DeepICD-R1 models and their hub ids.
ALIASES: dict[str, str] = {
    "DeepICD-R1-7B": "DATEXIS/DeepICD-R1-7B",
    "DeepICD-R1-zero-32B": "DATEXIS/DeepICD-R1-zero-32B",
}

#: Files a causal LM needs for inference (weights, config, tokenizer, generation config, chat template).
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are. ``name`` is what the user typed, ``hub_id`` the id after alias expansion."""

    name: str
    path: Path
    hub_id: str | None = None  # None for a local directory

    @property
    def display(self) -> str:
        """The name to show and to record: the hub id, or the directory."""
        return self.hub_id or str(self.path)


def expand_alias(name: str) -> str:
    """``DeepICD-R1-7B`` -> ``DATEXIS/DeepICD-R1-7B`` (case-insensitive); other names are returned unchanged."""
    lowered = {k.lower(): v for k, v in ALIASES.items()}
    return lowered.get(name.strip().lower(), name.strip())


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read now rather than at import time."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return True
    return False


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache in force now: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def looks_like_path(name: str) -> bool:
    """True for names that can only be a filesystem path (absolute, ``./``, ``~``, or more than one slash)."""
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")  # C:\ on Windows
        or name in (".", "..")
    )


def _check_local_dir(path: Path, name: str) -> Path:
    if not path.is_dir():
        raise EngineError(f"model path {path} is not a directory: pass a model directory or a hub id")
    if not (path / "config.json").is_file():
        raise EngineError(
            f"{path} is not a model directory (no config.json): pass the folder that save_pretrained wrote"
        )
    return path


def resolve_model(name: str, *, download: bool = True, revision: str | None = None) -> ResolvedModel:
    """Find the files of ``name`` (an alias, a hub id or a local directory), downloading them when allowed.

    ``download=False`` only looks in the local cache. ``HF_HUB_OFFLINE=1`` has the same effect.
    Raises :class:`EngineError` with one line naming the path or id when the weights cannot be had.
    """
    if not name or not name.strip():
        raise EngineError("no model given: pass --model with a hub id, a local directory or an alias (DeepICD-R1-7B)")
    raw = name.strip()
    local = Path(raw).expanduser()
    if local.exists():
        return ResolvedModel(name=raw, path=_check_local_dir(local.resolve(), raw))
    hub_id = expand_alias(raw)
    if looks_like_path(raw):
        raise EngineError(f"model directory {local} does not exist: check the path, or pass a hub id")
    return ResolvedModel(name=raw, path=_hub_snapshot(hub_id, download=download, revision=revision), hub_id=hub_id)


def _hub_snapshot(hub_id: str, *, download: bool, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise EngineError(
            f"cannot look up {hub_id}: huggingface_hub is not installed (pip install '.[hf]' in the icdreason checkout)"
        ) from exc
    cache = hub_cache_dir()
    offline = hub_offline() or not download
    try:
        path = snapshot_download(
            hub_id,
            revision=revision,
            cache_dir=str(cache),
            local_files_only=offline,
            allow_patterns=WEIGHT_PATTERNS,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
        )
    except HFValidationError:
        raise EngineError(
            f"{hub_id!r} is neither an existing directory nor a valid hub id (owner/name): check --model"
        ) from None
    except Exception as exc:  # network errors, missing or gated repos, offline cache misses
        reason = _short_reason(exc)
        if offline:
            why = "HF_HUB_OFFLINE is set" if hub_offline() else "downloads are off"
            raise EngineError(
                f"model {hub_id} is not in the Hugging Face cache ({cache}) and {why}: download it with "
                f"`hf download {hub_id}` where the hub can be reached, or pass a local directory"
            ) from None
        raise EngineError(
            f"cannot download model {hub_id} ({reason}): check the id and your network or HF_TOKEN, "
            f"or pass a local directory"
        ) from None
    if not (Path(path) / "config.json").is_file():
        raise EngineError(
            f"the cached copy of {hub_id} at {path} has no config.json: download it again with `hf download {hub_id}`"
        )
    return Path(path)


def _short_reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:160]}"
