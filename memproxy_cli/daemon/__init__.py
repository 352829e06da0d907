"""The daemon: run in the foreground, start in the background, stop with drain."""
