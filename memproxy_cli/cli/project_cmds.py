"""`memproxy attach`, `detach` and `run`: a stable local port per project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from memproxy_cli.cli.completions_cmds import complete_project
from memproxy_cli.cli.context import ExitStatus, output


def _ensure_daemon() -> None:
    from memproxy_cli.config import load_config
    from memproxy_cli.daemon import process
    from memproxy_cli.paths import get_paths

    paths = get_paths()
    if process.read_info(paths) is not None:
        return
    config = load_config()
    from memproxy_cli.cli.daemon_cmds import start_daemon

    info = start_daemon(paths, config, None)
    output.say(f"started memproxy at {info.url}")


def attach_project(project: str, port: int | None) -> dict[str, Any]:
    """Assign the port and open the listener in the daemon (started first when down)."""
    from memproxy_cli.daemon import client
    from memproxy_cli.paths import get_paths

    _ensure_daemon()
    code, data = client.call(get_paths(), "POST", "/attach", {"project": project, "port": port})
    if code != 200:
        output.fail(str(data.get("error", data)))
    from memproxy_cli.local_token import read_local_token

    base = f"http://127.0.0.1:{data['port']}"
    return {
        "project": data["project"],
        "port": data["port"],
        "openai_base_url": f"{base}/v1",
        "anthropic_base_url": base,
        "local_token": read_local_token(get_paths()),
        "skipped": data.get("skipped", []),
    }


def _project_or_cwd(project: str | None) -> str:
    from memproxy_cli.registry import default_project_name

    name = project or default_project_name(Path.cwd())
    if not name:
        output.fail(
            "not inside a git repository: name the project (memproxy attach NAME)", ExitStatus.USAGE
        )
    return name


def attach(
    project: str | None = typer.Argument(
        None, help="Project name (default: the git repo name).", autocompletion=complete_project
    ),
    port: int | None = typer.Option(None, "--port", help="Ask for this port."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Give PROJECT a stable local port and open its listener.

    Example: memproxy attach my-app
    """
    result = attach_project(_project_or_cwd(project), port)
    for skipped in result.pop("skipped"):
        output.say(f"skipped port {skipped['port']}: {skipped['reason']}")
    if json_out:
        output.json(result)
        return
    output.out.print(
        f"[bold]{result['project']}[/] listens on port {result['port']}\n\n"
        f"  OpenAI base URL     {result['openai_base_url']}\n"
        f"  Anthropic base URL  {result['anthropic_base_url']}\n\n"
        "Claude Code:\n"
        f"  export ANTHROPIC_BASE_URL={result['anthropic_base_url']}\n"
        f"  (or: memproxy run {result['project']} -- claude)\n"
        "PyCharm AI Assistant (Settings > Tools > AI Assistant > Models > OpenAI-compatible):\n"
        f"  URL: {result['openai_base_url']}\n"
        "Any OpenAI-compatible tool:\n"
        f"  export OPENAI_BASE_URL={result['openai_base_url']}"
    )
    token = result["local_token"]
    if token:
        output.print(
            f"\nLocal token (server.local_token is on): {token}\n"
            "  Claude Code:  export ANTHROPIC_CUSTOM_HEADERS='x-memproxy-token: "
            f"{token}'\n"
            "  PyCharm and OpenAI-compatible tools: use it as the API key\n"
            "  (memproxy run sets both for the command it runs)"
        )


def detach(
    project: str = typer.Argument(..., help="Project to detach.", autocompletion=complete_project),
) -> None:
    """Close PROJECT's listener and free its port.

    Example: memproxy detach my-app
    """
    from memproxy_cli.daemon import client
    from memproxy_cli.paths import get_paths
    from memproxy_cli.registry import PortRegistry

    paths = get_paths()
    try:
        _, data = client.call(paths, "POST", "/detach", {"project": project})
        released = bool(data.get("released"))
    except client.DaemonUnavailable:  # no daemon: free the port in the registry itself
        released = PortRegistry(paths).release(project)
    if not released:
        output.fail(f"project {project!r} is not attached", ExitStatus.NOT_FOUND)
    output.say(f"detached {project}")


def run(
    project: str = typer.Argument(
        ..., help="Project whose listener the command uses.", autocompletion=complete_project
    ),
    command: list[str] = typer.Argument(..., help="The command, after --."),
) -> None:
    """Run a command with ANTHROPIC_BASE_URL, OPENAI_BASE_URL and GOOGLE_GEMINI_BASE_URL set to
    PROJECT's listener.

    With server.local_token on, the command also gets the token (MEMPROXY_TOKEN,
    ANTHROPIC_CUSTOM_HEADERS, OPENAI_API_KEY).

    Example: memproxy run my-app -- claude
    """
    from memproxy_cli.daemon import process
    from memproxy_cli.paths import get_paths
    from memproxy_cli.registry import PortRegistry

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        output.fail("name a command to run after --", ExitStatus.USAGE)
    paths = get_paths()
    port = PortRegistry(paths).get(project)
    if port is None or process.read_info(paths) is None:
        port = attach_project(project, port)["port"]
    from memproxy_cli.local_token import client_env, read_local_token

    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": base,
        "OPENAI_BASE_URL": f"{base}/v1",
        "GOOGLE_GEMINI_BASE_URL": base,
    }
    token = read_local_token(paths)
    if token:
        env.update(client_env(token, env))
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        output.fail(f"command not found: {command[0]}", ExitStatus.NOT_FOUND)


def register(app: typer.Typer) -> None:
    app.command()(attach)
    app.command()(detach)
    app.command(context_settings={"allow_interspersed_args": False})(run)
