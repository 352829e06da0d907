"""Upstreams: model routing, passthrough, the LiteLLM adapter, sessions, Cloudflare."""
