"""Findings from rule hits: the episode rule (:mod:`.episodes`), the writing of messages and
evidence (:mod:`.writer`), the fast assembly of the engine's compressed hits (:mod:`.fast`)
and its plain reference (:mod:`.reference`)."""

from lemlabs.stages.findings.fast import assemble
from lemlabs.stages.findings.writer import evidence_of, evidence_row, in_row_order

__all__ = ["assemble", "evidence_of", "evidence_row", "in_row_order"]
