"""The outcome of one doctor check: what was found and, when something is off, the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    found: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ok(name: str, found: str) -> CheckResult:
    return CheckResult(name, "ok", found)


def warn(name: str, found: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name, "warn", found, fix)


def fail(name: str, found: str, fix: str | None = None) -> CheckResult:
    return CheckResult(name, "fail", found, fix)


def skip(name: str, found: str) -> CheckResult:
    return CheckResult(name, "skip", found)
