"""memproxy: a local LLM gateway with per-project memory and an honest spend log."""

__version__ = "0.1.0"
