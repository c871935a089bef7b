"""The Slack side of the sandbox: `crmops slack --sandbox` in a child process.

    slack = start_slack(env, host="127.0.0.1", ports=(0, 0))   # the bot and a fake Slack
    slack.urls.events_url, slack.urls.fake_api_url
    slack.stop()

`server/` never imports `bots/`: the child is the `slack` command, reached through the
`crmops.commands` entry points. It announces its URLs with one stdout line
(`tools.sandbox.stack.SlackSandboxUrls`) and stops by itself when its stdin closes (this
process died).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

from tools.errors import CrmopsError
from tools.sandbox.stack import SlackSandboxUrls

SLACK_START_TIMEOUT = 30.0
SLACK_STOP_TIMEOUT = 10.0
_SETTINGS_PREFIXES = ("SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "SLACK_", "CRMOPS_")


class SlackStartError(CrmopsError):
    """`crmops slack --sandbox` did not come up; its own message is on stderr."""


@dataclass
class SlackProcess:
    """`crmops slack --sandbox` running as a child, and where it listens."""

    process: subprocess.Popen[bytes]
    urls: SlackSandboxUrls

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `SLACK_STOP_TIMEOUT`."""
        _end(self.process)


def start_slack(env: dict[str, str], *, host: str, ports: tuple[int, int] = (0, 0)) -> SlackProcess:
    """Start the bot and the fake Slack (`ports`: endpoint, fake Slack; 0 any free port)."""
    command = [
        sys.executable,
        "-m",
        "server",
        "slack",
        "--sandbox",
        "--host",
        host,
        "--port",
        str(ports[0]),
        "--fake-slack-port",
        str(ports[1]),
    ]
    # The user's own settings (a real workspace, Redis, vendors) stay out of the sandbox.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    # stdin stays a pipe the child reads until EOF: if this process dies, so does the child.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, arguments we built
        command, env={**inherited, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        urls = _announced_urls(process)
    except BaseException:
        _end(process)
        raise
    return SlackProcess(process=process, urls=urls)


def _announced_urls(process: subprocess.Popen[bytes]) -> SlackSandboxUrls:
    assert process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
    lines: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, lines), daemon=True, name="slack-stdout"
    )
    reader.start()
    deadline = time.monotonic() + SLACK_START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            raise SlackStartError(f"the Slack bot exited with status {process.wait()}")
        urls = SlackSandboxUrls.parse(line.decode(errors="replace").strip())
        if urls is not None:
            return urls
    raise SlackStartError(f"the Slack bot did not start within {SLACK_START_TIMEOUT:.0f} s")


def _read_lines(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(b"")


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(SLACK_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SLACK_STOP_TIMEOUT)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
