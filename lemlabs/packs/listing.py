"""Every rule in words a clinician reads, with the effective thresholds (``lemlabs rules``)."""

from __future__ import annotations

import pandas as pd

from lemlabs.engine.language import words
from lemlabs.engine.rules import Rule
from lemlabs.packs import Packs, builtin_packs
from lemlabs.packs.thresholds import Thresholds

_MATCHES = {"result": "each result", "finding": "two findings", "schedule": "each schedule row"}


def condition_words(rule: Rule, thresholds: Thresholds) -> str:
    """``upper < 50 (itp.urgent_below) and ...``; a join names each fact it matches."""
    if rule.phase != "finding":
        return " and ".join(words(node, thresholds) for _, node in rule.when)
    return "; ".join(f"{alias}: {words(node, thresholds)}" for alias, node in rule.when)


def rules_table(thresholds: Thresholds, packs: Packs | None = None) -> pd.DataFrame:
    """One row per rule of the packs (the built-in ones unless given): id, code, title,
    condition, severity, what it matches, its condition in words with the effective thresholds,
    the message and action as shown, the sources."""
    packs = packs or builtin_packs()
    book = packs.book
    rows = []
    for rule in book.rules:
        message, action = rule.text(thresholds)
        rows.append(
            {
                "id": rule.id,
                "code": rule.code,
                "title": book.titles[rule.code],
                "condition": str(rule.condition),
                "severity": str(rule.severity),
                "matches": _MATCHES[rule.phase],
                "when": condition_words(rule, thresholds),
                "message": message,
                "action": action,
                "sources": packs.source(rule, thresholds),
            }
        )
    return pd.DataFrame(rows, dtype=object)


def rules_text(thresholds: Thresholds, markdown: bool = False, packs: Packs | None = None) -> str:
    """The rules table as plain text (one block per rule) or as a Markdown table."""
    table = rules_table(thresholds, packs)
    if markdown:
        lines = [
            "| id | severity | matches | when | message | sources |",
            "|---|---|---|---|---|---|",
        ]
        for row in table.itertuples():
            cells = [row.id, row.severity, row.matches, row.when, row.message, row.sources]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"
    blocks = [
        f"{row.id}  ({row.title}; {row.severity}; matches {row.matches})\n"
        f"  when:    {row.when}\n  says:    {row.message}\n  sources: {row.sources}"
        for row in table.itertuples()
    ]
    return "\n\n".join(blocks) + "\n"
