"""`python -m memproxy_cli.docsgen [--check] [docs] [completions]`: write or check the files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def _completion(shell: str) -> Callable[[], str]:
    def render() -> str:
        from memproxy_cli.cli.completions_cmds import completion_script

        return completion_script(shell) + "\n"

    return render


def _config() -> str:
    from memproxy_cli.docsgen.config_ref import render_config_reference

    return render_config_reference()


def _cli() -> str:
    from memproxy_cli.docsgen.cli_ref import render_cli_reference

    return render_cli_reference()


GROUPS: dict[str, dict[str, Callable[[], str]]] = {
    "docs": {"docs/configuration.md": _config, "docs/cli.md": _cli},
    "completions": {f"completions/memproxy.{s}": _completion(s) for s in ("bash", "zsh", "fish")},
}


def generated(groups: list[str]) -> dict[str, str]:
    """Relative path -> the content it must have."""
    return {path: render() for g in groups for path, render in GROUPS[g].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memproxy_cli.docsgen")
    parser.add_argument("groups", nargs="*", help=f"any of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    args = parser.parse_args(argv)
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    stale = []
    for rel, text in generated(args.groups or list(GROUPS)).items():
        target = args.root / rel
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    for rel in stale:
        print(f"{'stale' if args.check else 'wrote'} {rel}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
