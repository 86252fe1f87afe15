"""The stages a lab row goes through, in flow order: ingest → normalise → context → facts (and the
engine) → findings; schedule and monitoring beside them. Plain functions over pandas tables."""
