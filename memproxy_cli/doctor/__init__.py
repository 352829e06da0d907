"""`memproxy doctor`: one small function per check, each returning a CheckResult with its fix."""

from memproxy_cli.doctor.result import CheckResult, Status

__all__ = ["CheckResult", "Status"]
