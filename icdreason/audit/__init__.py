"""Expert-supervised audits of prediction files: sampling, the review session, the DuckDB audit store, imports of
offline decisions, agreement statistics and the report (terminal, Markdown, self-contained HTML).

The interactive session's logic (:class:`ReviewSession`) is separate from its two front ends, the terminal
(:class:`~icdreason.audit.terminal.ReviewScreen`) and the web page (:mod:`icdreason.audit.web`, imported only by
``audit serve``), so everything a reviewer can do can be driven from Python too.
"""

from .agreement import Agreement, agreement, cohen_kappa, fleiss_kappa, level_label
from .cases import join_audit, start_audit
from .evidence import Evidence, find_evidence, sentences, unsupported_trace_sentences
from .importer import ImportResult, RejectedRow, import_decisions
from .report import AuditReport, build_report, divergence_level
from .sampling import STRATEGIES, sample
from .session import ActionRefused, CaseView, ReviewSession
from .store import DECISIONS, REJECT_REASONS, AuditDatabaseError, AuditInfo, AuditStore, Case, Decision

__all__ = [
    "ActionRefused", "Agreement", "AuditDatabaseError", "AuditInfo", "AuditReport", "AuditStore", "Case", "CaseView",
    "DECISIONS", "Decision", "Evidence", "ImportResult", "REJECT_REASONS", "RejectedRow", "ReviewSession",
    "STRATEGIES", "agreement", "build_report", "cohen_kappa", "divergence_level", "find_evidence", "fleiss_kappa",
    "import_decisions", "join_audit", "level_label", "sample", "sentences", "start_audit", "unsupported_trace_sentences",
]
