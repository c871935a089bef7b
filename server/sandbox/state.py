"""The running sandbox's state file: what it leaves for `crmops sandbox --env` to print.

    write_state(env)                         # `crmops sandbox`, while it runs
    print(export_lines(read_running_env()))  # `crmops sandbox --env`, in another terminal

The file is `sandbox.json` in the crmops data directory, readable by the user only, removed
when the sandbox stops; a file left by a killed sandbox is recognised and removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tools.errors import ConfigurationError
from tools.storage.configured import data_dir

STATE_FILE = "sandbox.json"


def state_path() -> Path:
    """Where a running sandbox leaves its environment for `crmops sandbox --env`."""
    return data_dir() / STATE_FILE


def write_state(env: dict[str, str]) -> Path:
    """Record this process and `env` as the running sandbox; the file's path."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"pid": os.getpid(), "env": env}
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return path


def export_lines(env: dict[str, str]) -> str:
    """`export NAME='value'` lines for a POSIX shell."""
    return "\n".join(f"export {name}={_shell_quote(value)}" for name, value in env.items())


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def read_running_env() -> dict[str, str]:
    """The environment a running sandbox left; `ConfigurationError` if none is running."""
    path = state_path()
    start = "start one with `crmops sandbox` in another terminal"
    if not path.exists():
        raise ConfigurationError(vendor="sandbox", detail=f"no sandbox is running: {start}")
    state = json.loads(path.read_text(encoding="utf-8"))
    if not _alive(int(state["pid"])):
        # Killed without clean-up (kill -9): its ports are gone, the file is stale.
        path.unlink(missing_ok=True)
        raise ConfigurationError(vendor="sandbox", detail=f"the sandbox was killed: {start}")
    env: dict[str, str] = state["env"]
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
