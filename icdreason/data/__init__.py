"""Training data: MIMIC-IV admission notes, the patient-grouped stratified split, and the verl / trl Parquet layouts."""

from .prepare import DATA_SOURCE, INVALID_GOLD, SFT_ANSWER, SPLIT_BY, PrepareOptions, PrepareResult, prepare_mimic
from .sections import KEPT_SECTIONS, AdmissionNote, admission_note
from .split import SPLITS, SplitResult, grouped_split, split_report, stratified_split

__all__ = [
    "DATA_SOURCE",
    "INVALID_GOLD",
    "KEPT_SECTIONS",
    "SFT_ANSWER",
    "SPLITS",
    "SPLIT_BY",
    "AdmissionNote",
    "PrepareOptions",
    "PrepareResult",
    "SplitResult",
    "admission_note",
    "grouped_split",
    "prepare_mimic",
    "split_report",
    "stratified_split",
]
