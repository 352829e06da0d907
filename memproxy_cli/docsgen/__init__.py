"""Generators of docs/configuration.md, docs/cli.md and completions/ (tests keep them fresh)."""
