"""Errors become exit codes in one place (cli/main.py), by the error's type."""

from __future__ import annotations

from pathlib import Path

import pytest

from memproxy_cli.cli.context import ExitStatus
from memproxy_cli.cli.main import EXIT_STATUS, exit_status_of
from memproxy_cli.config import ConfigError
from memproxy_cli.daemon.client import DaemonUnavailable
from memproxy_cli.daemon.process import NotMemproxy, StartError
from memproxy_cli.paths import UnsafeHome
from memproxy_cli.registry import RegistryCorrupt, RegistryError
from tests.fixtures.daemon import memproxy


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConfigError("x"), ExitStatus.CONFIG),
        (DaemonUnavailable("x"), ExitStatus.DAEMON),
        (StartError("x"), ExitStatus.DAEMON),
        (NotMemproxy("x"), ExitStatus.DAEMON),
        (RegistryError("x"), ExitStatus.ERROR),
        (RegistryCorrupt("x"), ExitStatus.ERROR),  # a subclass maps like its base
        (UnsafeHome("x"), ExitStatus.ERROR),
    ],
)
def test_every_named_error_has_its_exit_status(error: Exception, status: ExitStatus) -> None:
    assert exit_status_of(error) == status


def test_the_table_names_only_classes_that_exist() -> None:
    named = {
        f"{c.__module__}.{c.__qualname__}"
        for c in (
            ConfigError,
            DaemonUnavailable,
            StartError,
            NotMemproxy,
            RegistryError,
            UnsafeHome,
        )
    }
    assert set(EXIT_STATUS) == named
    assert exit_status_of(ValueError("x")) is None


def test_a_bad_config_exits_3_from_every_command_that_reads_it(memproxy_home: Path) -> None:
    config_dir = memproxy_home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text("server:\n  port: nope\n", encoding="utf-8")
    for args in (("up",), ("memory", "list", "--project", "p"), ("attach", "p")):
        result = memproxy(memproxy_home, *args)
        assert result.returncode == 3, (args, result.stderr)
        assert "server.port" in result.stderr and "Traceback" not in result.stderr
