"""The rule language and its engine: conditions a clinician reads (:mod:`.language`), rule
records checked and compiled (:mod:`.rules`), and durable-rules behind one class (:mod:`.durable`).
"""

from lemlabs.engine.durable import Hit, Hits, RuleEngine, engine_for, json_safe

__all__ = ["Hit", "Hits", "RuleEngine", "engine_for", "json_safe"]
