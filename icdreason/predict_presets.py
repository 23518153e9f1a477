"""Presets of ``icdreason predict``: named decoding and pipeline settings, each value with its source.

- ``deepicd-r1-eval``: decoding as the authors' evaluation (DATEXIS/DeepICD-R1 ``src/evaluate.py`` at commit
  80f64850ee6c9adeae1bced4f01912e3b195f026). It calls vLLM's ``LLM.generate`` without sampling parameters, so the
  sampling is the model's ``generation_config.json`` as vLLM reads it (temperature, top_p, top_k, min_p,
  repetition_penalty; ``do_sample`` is ignored; absent keys are vLLM's defaults: temperature 1, no top-p/top-k), with
  ``max_tokens`` 1,024, one sample, no seed; prompts over 2,048 tokens are left out; notes are not cut.

A preset supplies defaults: a flag given on the command line wins (:func:`apply_predict_preset` is told which).

One edge is not followed: vLLM reads the file through ``GenerationConfig.to_diff_dict()``, which under transformers
4.x drops values equal to transformers' own defaults, so an explicit ``"top_k": 50`` meant "off" there (transformers
5 keeps it); icdreason takes the file as written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import EngineError, UsageError

__all__ = ["GENERATION_CONFIG_KEYS", "PREDICT_PRESETS", "PredictPreset", "apply_predict_preset",
           "generation_config_sampling", "get_predict_preset"]

#: generation_config.json keys vLLM applies when LLM.generate gets no sampling parameters -> SamplingParams fields.
GENERATION_CONFIG_KEYS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                          "repetition_penalty": "repetition_penalty"}
#: vLLM's SamplingParams defaults for the keys a generation config leaves out (``top_k`` -1: off).
VLLM_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


@dataclass(frozen=True)
class PredictPreset:
    """Defaults for :class:`~icdreason.engines.base.SamplingParams` and :class:`~icdreason.predict.PredictSettings`,
    and whether the sampling comes from the model's generation config."""

    name: str
    summary: str
    sampling: dict[str, Any]
    settings: dict[str, Any]
    from_generation_config: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


_EVAL = "src/evaluate.py"
PREDICT_PRESETS: dict[str, PredictPreset] = {
    "deepicd-r1-eval": PredictPreset(
        name="deepicd-r1-eval",
        summary="decoding as the authors' evaluation (DATEXIS/DeepICD-R1 src/evaluate.py @ 80f6485)",
        sampling={"n": 1, "max_new_tokens": 1024, "seed": None},
        settings={"max_prompt_tokens": 2048, "long_prompts": "skip", "max_note_chars": 0},
        from_generation_config=True,
        sources={
            "n": f"{_EVAL}: LLM.generate(prompts) without SamplingParams, one completion each",
            "max_new_tokens": f"{_EVAL}: min_max_tokens 1024 set as the default max_tokens",
            "seed": f"{_EVAL}: no seed",
            "sampling": "the model's generation_config.json as vLLM applies it to LLM.generate without SamplingParams",
            "max_prompt_tokens": f"{_EVAL}: prompts over 2048 tokens filtered before generation",
            "max_note_chars": f"{_EVAL}: notes are not cut",
        },
        notes=(
            "their length filter as written tests len(tokenizer(text)), the number of fields of the tokenizer's "
            "output (2), not of tokens, so it kept every prompt; the preset skips (and flags) prompts over 2,048 "
            "tokens as the filter intends; --long-prompts flag keeps them (flagged), as their run did",
        ),
    ),
}


def get_predict_preset(name: str) -> PredictPreset:
    """The preset ``name``; an unknown name is a one-line usage error listing the known ones."""
    try:
        return PREDICT_PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown predict preset {name!r} (known: {', '.join(PREDICT_PRESETS)})") from None


def generation_config_sampling(model: str) -> tuple[dict[str, Any], str]:
    """(SamplingParams values, where they came from) from ``model``'s ``generation_config.json``, read as vLLM reads
    it: the five sampling keys it sets, vLLM's defaults for the others, ``do_sample`` ignored. ``model`` is a local
    directory or a hub id/alias (only that one file is downloaded). A model without the file gets vLLM's defaults."""
    from .models import expand_alias, hub_offline

    local = Path(model).expanduser()
    if local.is_dir():
        path: Path | None = local / "generation_config.json"
        where = str(path)
        if not path.is_file():
            path = None
    else:
        hub_id = expand_alias(model)
        where = f"{hub_id}/generation_config.json"
        path = _hub_file(hub_id, "generation_config.json", offline=hub_offline())
    values = dict(VLLM_DEFAULTS)
    if path is None:
        return values, f"vLLM's defaults ({where} not found)"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"cannot read {where} ({exc}): pass --temperature/--top-p to set the sampling") from None
    if not isinstance(config, dict):
        raise EngineError(f"{where} is not a JSON object: pass --temperature/--top-p to set the sampling")
    for key, name in GENERATION_CONFIG_KEYS.items():
        value = config.get(key)
        if value is not None:
            values[name] = int(value) if name == "top_k" else float(value)
    if values["top_k"] == 0:  # transformers' and newer vLLM's "off"
        values["top_k"] = -1
    return values, where


def _hub_file(hub_id: str, filename: str, *, offline: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError:  # pragma: no cover - comes with transformers
        raise EngineError(f"cannot look up {hub_id}: huggingface_hub is not installed") from None
    try:
        return Path(hf_hub_download(hub_id, filename, local_files_only=offline,
                                    endpoint=os.environ.get("HF_ENDPOINT") or None))
    except EntryNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - offline, gated, unknown repo: one line
        reason = " ".join(str(exc).split())[:160]
        raise EngineError(f"cannot read the generation config of {hub_id} ({type(exc).__name__}: {reason}): pass "
                          "--temperature/--top-p (or a local model directory) to set the sampling") from None


def apply_predict_preset(name: str, *, params, settings, explicit: set[str], model: str | None):
    """``params`` and ``settings`` with the preset's values, except the fields named in ``explicit`` (given as
    flags); returns (params, settings, notes). The sampling comes from ``model``'s generation config when the
    preset says so, unless ``temperature`` or ``top_p`` was given (then the flags decide the sampling)."""
    preset = get_predict_preset(name)
    notes: list[str] = []
    sampling = {k: v for k, v in preset.sampling.items() if k not in explicit}
    if preset.from_generation_config and explicit & {"temperature", "top_p"}:
        notes.append(f"preset {name}: sampling as given by the flags, not from the model's generation config")
    elif preset.from_generation_config:
        if not model:
            raise UsageError(f"--preset {name} reads the model's generation config: pass --model")
        values, where = generation_config_sampling(model)
        sampling.update(values)
        shown = ", ".join(f"{k} {values[k]:g}" for k in GENERATION_CONFIG_KEYS.values())
        notes.append(f"preset {name}: sampling from {where}: {shown}")
    pipeline = {k: v for k, v in preset.settings.items() if k not in explicit}
    params = replace(params, **sampling)
    settings = replace(settings, **pipeline, preset=name)
    notes.extend(f"preset {name}: {note}" for note in preset.notes)
    return params, settings, notes
