"""Per-project USD budgets (in-memory counters, optionally shared via Redis); Redis caches."""
