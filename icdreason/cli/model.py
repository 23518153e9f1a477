"""``icdreason model``: model folders on disk (GGUF import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import cell, console, err_console

app = typer.Typer(help="Model folders: turn a GGUF file into a Hugging Face folder every engine accepts.",
                  no_args_is_help=True)

_STAGES = {"hash": "sha256", "tokenizer": "tokenizer", "dequantise": "dequantise", "save": "save"}


@app.command("import-gguf")
def import_gguf(
    file: Annotated[Path, typer.Argument(help="The .gguf file (a Llama, Qwen2, Mistral... model transformers can "
                                              "dequantise).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (safetensors, config, tokenizer with its "
                                                          "chat template, generation config).")],
    dtype: Annotated[str, typer.Option(help="Weights' dtype in the folder: float32, bfloat16 or float16.")] = "float32",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Dequantise a GGUF file into a Hugging Face folder for --model / --teacher / train; records its source and
    sha256 in icdreason-import.json."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..models.gguf import import_gguf as run_import

    with Progress(TextColumn("{task.description:<10}"), BarColumn(), TextColumn("{task.fields[size]}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            size = f"{done / 2**20:,.0f}/{total / 2**20:,.0f} MiB" if stage == "hash" and total else ""
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total, size=size)
            bar.update(tasks[stage], completed=done, total=total, size=size)

        result = run_import(file, out, dtype=dtype, overwrite=overwrite, progress=progress)
    if as_json:
        console.print_json(json.dumps({"out": str(result.out), "architecture": result.architecture,
                                       "parameters": result.parameters, "dtype": result.dtype,
                                       "sha256": result.sha256, "files": result.files,
                                       "chat_template": result.chat_template, "seconds": round(result.seconds, 1)}))
        return
    console.print(cell(f"{result.out}: {result.architecture}, {result.parameters / 1e6:.1f}M parameters, "
                       f"{result.dtype}, sha256 {result.sha256[:16]}…, {len(result.files)} files "
                       f"({'with' if result.chat_template else 'no'} chat template) in {result.seconds:.0f} s"))
