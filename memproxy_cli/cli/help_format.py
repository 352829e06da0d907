"""Typer's Rich help formatter, imported without the two Rich modules this CLI never uses.

`typer.rich_utils` imports `rich.markdown` (with markdown-it and Pygments) for
`rich_markup_mode="markdown"` and `rich.traceback` for pretty exceptions. The app uses the
"rich" markup mode and turns pretty exceptions off, yet the two imports are about a third of
`memproxy --help`. While `typer.rich_utils` is imported, stand-ins take their place; each builds
the real object on first use, so the help text stays exactly the same.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _Markdown:
    """Stands in for `rich.markdown.Markdown`; calling it returns the real thing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.markdown import Markdown

        return Markdown(*args, **kwargs)


class _Traceback:
    """Stands in for `rich.traceback.Traceback`; `from_exception` returns the real thing."""

    @classmethod
    def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
        from rich.traceback import Traceback

        return Traceback.from_exception(*args, **kwargs)


_STAND_INS = (("rich.markdown", "Markdown", _Markdown), ("rich.traceback", "Traceback", _Traceback))


def import_help_formatter() -> None:
    """Import `typer.rich_utils` with the stand-ins in place; they leave `sys.modules` after.

    A Typer whose `rich_utils` needs more from those modules fails that import; Typer then
    imports `rich_utils` the usual way when it formats help.
    """
    if "typer.rich_utils" in sys.modules:
        return
    placed: dict[str, types.ModuleType] = {}
    for name, attribute, stand_in in _STAND_INS:
        if name not in sys.modules:
            module = types.ModuleType(name)
            setattr(module, attribute, stand_in)
            placed[name] = module
    sys.modules.update(placed)
    try:
        import typer.rich_utils  # noqa: F401
    except ImportError:
        sys.modules.pop("typer.rich_utils", None)  # Typer imports it itself when it needs it
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
