"""Rule packs and the threshold table. ``ALL_RULES`` is every rule, single-test and composite."""

from lemlabs.rules import monitoring, platelets, renal, thyroid
from lemlabs.rules.base import Gate, Rule
from lemlabs.rules.thresholds import Thresholds, default_thresholds, load_thresholds

ALL_RULES: tuple[Rule, ...] = (
    *thyroid.RULES,
    *platelets.RULES,
    *renal.RULES,
    *thyroid.COMPOSITES,
    *renal.COMPOSITES,
    *monitoring.RULES,
)
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
ALL_GATES: tuple[Gate, ...] = (*thyroid.GATES, *platelets.GATES, *renal.GATES)

__all__ = [
    "ALL_GATES",
    "ALL_RULES",
    "RULES_BY_ID",
    "Gate",
    "Rule",
    "Thresholds",
    "default_thresholds",
    "load_thresholds",
]
