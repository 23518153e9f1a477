"""GGUF files turned into Hugging Face folders (``icdreason model import-gguf``).

transformers reads a GGUF file with ``from_pretrained(folder, gguf_file=...)``: it dequantises every tensor and builds
the tokenizer (with its chat template) from the file's metadata. A model loaded that way keeps a GGUF quantizer
attached and refuses ``save_pretrained``; :func:`import_gguf` detaches it (the weights are already plain tensors), casts
to the dtype asked for, makes every tensor contiguous and writes safetensors, ``config.json``, the tokenizer files,
``generation_config.json`` and ``icdreason-import.json``: where the folder came from (file name, size, sha256, dtype,
transformers version). Every engine, ``distill`` and ``train`` then accept the folder as ``--model``.

Importing this module is cheap; torch and transformers are imported by :func:`import_gguf`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DependencyError, InputError, UsageError, install_hint

GGUF_MAGIC = b"GGUF"
DTYPES = ("float32", "bfloat16", "float16")
PROVENANCE_FILE = "icdreason-import.json"

# stage name, units done, units in all (None when unknown): the CLI draws a progress bar from these calls
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class ImportedModel:
    """What :func:`import_gguf` wrote."""

    out: Path
    architecture: str
    parameters: int
    dtype: str
    sha256: str
    seconds: float
    files: list[str] = field(default_factory=list)
    chat_template: bool = False


def sha256_of(path: Path, progress: Progress | None = None, chunk: int = 1 << 22) -> str:
    """The file's sha256 in hex, reporting bytes read to ``progress`` as stage ``hash``."""
    total = path.stat().st_size
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            done += len(block)
            if progress:
                progress("hash", done, total)
    return digest.hexdigest()


def check_gguf(path: Path) -> None:
    """Fail with one line unless ``path`` is a readable file that starts with the GGUF magic bytes."""
    if not path.is_file():
        raise InputError(f"{path}: no such GGUF file")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise InputError(f"{path}: not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")


def import_gguf(path: str | Path, out: str | Path, *, dtype: str = "float32", overwrite: bool = False,
                progress: Progress | None = None) -> ImportedModel:
    """Dequantise the GGUF file ``path`` into a Hugging Face folder ``out``.

    The folder is written beside ``out`` first and moved into place at the end, so a failure leaves no half folder
    and, with ``overwrite``, the old folder survives until the new one is complete. An architecture or quantisation
    transformers cannot read is one :class:`InputError` line.
    """
    path, out = Path(path), Path(out)
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    check_gguf(path)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} already exists: choose another --out or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder")
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise DependencyError(f"import-gguf needs torch and transformers ({exc.name} is missing): "
                              f"{install_hint('hf')}") from None
    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF files with it
        raise DependencyError(f"import-gguf needs the gguf package: {install_hint('hf')} (or pip install gguf)")
    started = time.perf_counter()
    digest = sha256_of(path, progress)
    tokenizer, model = _load(path, getattr(torch, dtype), transformers, progress)
    if progress:
        progress("save", 0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the folder private
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        parameters = sum(p.numel() for p in model.parameters())
        architecture = type(model).__name__
        provenance = {
            "source": path.name, "source_bytes": path.stat().st_size, "sha256": digest, "dtype": dtype,
            "architecture": architecture, "parameters": parameters, "transformers": transformers.__version__,
            "torch": torch.__version__, "tool": "icdreason model import-gguf",
        }
        (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if progress:
        progress("save", 1, 1)
    return ImportedModel(out=out, architecture=architecture, parameters=parameters, dtype=dtype, sha256=digest,
                         seconds=time.perf_counter() - started, files=sorted(p.name for p in out.iterdir()),
                         chat_template=bool(getattr(tokenizer, "chat_template", None)))


def _load(path: Path, dtype, transformers, progress: Progress | None):
    """Tokenizer and dense model from the GGUF file, detached from the GGUF quantizer and ready to save."""
    from transformers.utils import logging as hf_logging

    folder, name = str(path.parent.resolve()), path.name
    hf_logging.disable_progress_bar()  # our own bar stands for it
    errors = (ValueError, KeyError, NotImplementedError, TypeError, RuntimeError, OSError)
    try:
        if progress:
            progress("dequantise", 0, 1)
        kwargs = {"gguf_file": name, "dtype": dtype, "output_loading_info": True}
        config_cls = getattr(transformers, "GgufConfig", None)
        if config_cls is not None:  # unpack every weight now: the folder holds plain tensors
            kwargs["quantization_config"] = config_cls(dequantize=True)
        model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        missing = sorted(set(info.get("missing_keys") or ()) - _tied_names(model))
        if missing:  # transformers fills them with random values: the folder would not be the file's model
            raise InputError(f"cannot import {path.name}: the file lacks {len(missing)} of the weights a "
                             f"{type(model).__name__} needs ({', '.join(missing[:3])}"
                             f"{', …' if len(missing) > 3 else ''})")
        if progress:
            progress("dequantise", 1, 1)
            progress("tokenizer", 0, 1)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except errors as exc:
        raise InputError(f"cannot import {path.name}: {_one_line(exc)}") from None
    finally:
        hf_logging.enable_progress_bar()
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        packed = [n for n, m in model.named_modules() if "gguf" in type(m).__name__.lower()]
        if packed:
            raise InputError(f"cannot import {path.name}: transformers kept {len(packed)} layers packed in GGUF blocks")
        quantizer.remove_quantization_config(model)
    model = model.to(dtype)
    for param in model.parameters():
        if not param.data.is_contiguous():
            param.data = param.data.contiguous()
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    generation = model.generation_config
    if getattr(generation, "eos_token_id", None) is None and tokenizer.eos_token_id is not None:
        generation.eos_token_id = tokenizer.eos_token_id
    if getattr(generation, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    if progress:
        progress("tokenizer", 1, 1)
    return tokenizer, model


def _tied_names(model) -> set[str]:
    """Weights that share another weight's tensor (an untied copy is not expected in the file)."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return set()
    return {name for name, _ in model.named_parameters(remove_duplicate=False)
            if name.endswith("lm_head.weight")} | {"lm_head.weight"}


def read_provenance(folder: str | Path) -> dict | None:
    """The ``icdreason-import.json`` of an imported folder, or None."""
    file = Path(folder) / PROVENANCE_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
