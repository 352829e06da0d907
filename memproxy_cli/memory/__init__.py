"""Memory: backends, query and injection strategies, secret redaction."""
