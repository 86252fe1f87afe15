"""The rules: records in one pack file per condition (``thyroid.toml``, ``platelets.toml``,
``renal.toml``, ``monitoring.toml``) and the threshold table (``thresholds.toml``) their numbers
come from. ``ALL_RULES`` is every rule, single-test and composite, in pack order."""

from lemlabs.engine.rules import Rule, RuleBook, rule_book
from lemlabs.packs.thresholds import Thresholds, default_thresholds, load_thresholds

ALL_RULES: tuple[Rule, ...] = rule_book().rules
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
TITLES = rule_book().titles
"""What each finding code is called where a clinician reads first (cards, reports, plots)."""

__all__ = [
    "ALL_RULES",
    "RULES_BY_ID",
    "TITLES",
    "Rule",
    "RuleBook",
    "Thresholds",
    "default_thresholds",
    "load_thresholds",
    "rule_book",
]
