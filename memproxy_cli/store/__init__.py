"""Spend store: request log rows, daily aggregates, the single writer, read queries."""
