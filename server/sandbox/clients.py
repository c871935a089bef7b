"""Ready-made MCP client configs for the running sandbox: `crmops sandbox --env --client NAME`.

A client spawns a stdio server with only a few variables of its own (HOME, PATH, ...), so
`eval "$(crmops sandbox --env)"` in a shell never reaches it: the settings must be in the
client's config, in its `env` block (or, for the MCP Inspector, its `-e NAME=value`
options)::

    print(client_config(ClientName.CLAUDE, read_running_env()))     # claude_desktop_config.json
    print(client_config(ClientName.INSPECTOR, read_running_env()))  # two command lines

The server is named `crmops-sandbox`, so pasting it next to a real `crmops` entry replaces
nothing; its command is this installation's `crmops` by full path (a client's `PATH` is
not the shell's). Only the vendors' variables go in: a stdio `crmops mcp` needs no MCP token
and no Slack settings.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from enum import StrEnum
from pathlib import Path

from tools.vendors.registry import REGISTRY


class ClientName(StrEnum):
    """The MCP clients `--client` writes a config for."""

    CLAUDE = "claude"
    CURSOR = "cursor"
    VSCODE = "vscode"
    INSPECTOR = "inspector"


SERVER_NAME = "crmops-sandbox"
INSPECTOR = ("npx", "@modelcontextprotocol/inspector")
ROOT = Path(__file__).resolve().parents[2]
"""The checkout: on `PYTHONPATH` when crmops runs as `python -m server` (no console script)."""


def client_config(client: ClientName, env: dict[str, str]) -> str:
    """What to paste into `client`'s config (JSON), or, for `inspector`, what to run."""
    command, server_env = crmops_command(vendor_env(env))
    if client == ClientName.INSPECTOR:
        return _inspector_lines(command, server_env)
    server: dict[str, object] = {"command": command[0], "args": [*command[1:], "mcp"]}
    server["env"] = server_env
    if client == ClientName.VSCODE:  # .vscode/mcp.json: "servers", and each says its "type"
        return _json({"servers": {SERVER_NAME: {"type": "stdio", **server}}})
    # Claude Desktop (claude_desktop_config.json) and Cursor (mcp.json) read the same shape.
    return _json({"mcpServers": {SERVER_NAME: server}})


def vendor_env(env: dict[str, str]) -> dict[str, str]:
    """The vendors' variables of `env` (`SOCIALEPOCH_*`, `XIAOLANBEN_*`, `BANGWO8_*`)."""
    prefixes = tuple(row.env_prefix for row in REGISTRY)
    return {name: value for name, value in env.items() if name.startswith(prefixes)}


def crmops_command(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command that runs this installation's `crmops`, and `env` with what it needs.

    The console script next to this Python (a virtualenv's `bin/crmops`), else the one on
    `PATH`, else `python -m server` with the checkout on `PYTHONPATH`.
    """
    here = shutil.which("crmops", path=str(Path(sys.executable).parent))
    script = here or shutil.which("crmops")
    if script is not None:
        return [str(Path(script).resolve())], env
    return [sys.executable, "-m", "server"], {**env, "PYTHONPATH": str(ROOT)}


def _inspector_lines(command: list[str], env: dict[str, str]) -> str:
    options = [part for name, value in env.items() for part in ("-e", f"{name}={value}")]
    # The two modes read their arguments in different orders: the web UI takes its options,
    # then `--`, then the server's command; `--cli` takes the command first, then options.
    web = [*INSPECTOR, *options, "--", *command, "mcp"]
    cli = [*INSPECTOR, "--cli", *command, "mcp", *options, "--method", "tools/list"]
    return "\n".join(
        [
            "# the Inspector's web UI, connected to the sandbox over stdio:",
            shlex.join(web),
            "# or one call from the command line:",
            shlex.join(cli),
        ]
    )


def _json(config: dict[str, object]) -> str:
    return json.dumps(config, indent=2, ensure_ascii=False)
