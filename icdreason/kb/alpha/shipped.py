"""The index files icdreason ships (``knowledge/index/``): where they are and what ``manifest.json`` says of them.

A source checkout (or an editable install) reads them from ``knowledge/index/`` of the repository; a wheel installs
them under ``<prefix>/share/icdreason/index``. ``ICDREASON_INDEX_DIR`` points elsewhere, or nowhere (empty: build
without the shipped index).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

_ENV = "ICDREASON_INDEX_DIR"


@dataclass(frozen=True)
class ShippedFile:
    """One shipped index file and its provenance."""

    path: Path
    kind: str           # index | eindex | neoplasm | drug
    release: str
    sha256: str         # of the file as shipped (compressed)
    provenance: str
    losses: str         # what it lacks against the official file ('' when complete)


def shipped_dir() -> Path | None:
    """The folder holding the shipped index files and their manifest, or None when there is none."""
    configured = os.environ.get(_ENV)
    if configured is not None:
        folder = Path(configured).expanduser() if configured else None
        return folder if folder and (folder / "manifest.json").is_file() else None
    for folder in (Path(__file__).resolve().parents[3] / "knowledge" / "index",
                   Path(sys.prefix) / "share" / "icdreason" / "index"):
        if (folder / "manifest.json").is_file():
            return folder
    return None


def shipped_files() -> list[ShippedFile]:
    """The shipped files listed in the manifest that are present, in manifest order (empty without them)."""
    folder = shipped_dir()
    if folder is None:
        return []
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    out = []
    for entry in manifest.get("files", []):
        path = folder / entry["file"]
        if path.is_file():
            out.append(ShippedFile(path, entry["kind"], entry.get("release", ""), entry.get("sha256", ""),
                                   entry.get("provenance", ""), entry.get("losses", "")))
    return out
