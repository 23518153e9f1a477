"""Training data: MIMIC-IV admission notes, the stratified split, and the verl / trl Parquet layouts."""

from .prepare import DATA_SOURCE, SFT_ANSWER, PrepareOptions, PrepareResult, prepare_mimic
from .sections import KEPT_SECTIONS, AdmissionNote, admission_note
from .split import SPLITS, SplitResult, stratified_split

__all__ = [
    "DATA_SOURCE",
    "KEPT_SECTIONS",
    "SFT_ANSWER",
    "SPLITS",
    "AdmissionNote",
    "PrepareOptions",
    "PrepareResult",
    "SplitResult",
    "admission_note",
    "prepare_mimic",
    "stratified_split",
]
