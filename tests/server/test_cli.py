"""The `crmops` command line: exit codes and one-line errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from server.cli import EXIT_CONFIG, EXIT_INPUT, app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_errors_explains_a_code(runner: CliRunner) -> None:
    result = runner.invoke(app, ["errors", "502"])
    assert result.exit_code == 0
    assert "socialepoch 502" in result.stdout
    assert "What to do:" in result.stdout


def test_errors_finds_a_message_text_and_narrows_by_vendor(runner: CliRunner) -> None:
    result = runner.invoke(app, ["errors", "401", "--vendor", "Bangwo8"])
    assert result.exit_code == 0
    assert "bangwo8 401" in result.stdout
    assert "xiaolanben" not in result.stdout


def test_an_unknown_code_is_an_answer_not_a_failure(runner: CliRunner) -> None:
    result = runner.invoke(app, ["errors", "535"])
    assert result.exit_code == 0
    assert "not documented" in result.stdout


def test_a_bad_vendor_is_one_line_on_stderr_with_the_input_exit_code(runner: CliRunner) -> None:
    result = runner.invoke(app, ["errors", "502", "--vendor", "nope"])
    assert result.exit_code == EXIT_INPUT
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot look up this error")


def test_http_without_a_token_refuses_to_start(runner: CliRunner) -> None:
    result = runner.invoke(app, ["mcp", "--http", "--port", "8765"])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.count("\n") == 1
    assert "CRMOPS_MCP_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_tool_refuses_to_start(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMOPS_TOOLS", "list_staff,nope")
    result = runner.invoke(app, ["mcp"])
    assert result.exit_code == EXIT_CONFIG
    assert "unknown tool(s) nope" in result.stderr


def test_read_only_with_only_writing_tools_refuses_to_start(runner: CliRunner) -> None:
    result = runner.invoke(app, ["mcp", "--read-only", "--tools", "create_ticket"])
    assert result.exit_code == EXIT_CONFIG
    assert "no tool left" in result.stderr


def test_bad_usage_is_exit_code_2(runner: CliRunner) -> None:
    assert runner.invoke(app, ["mcp", "--port", "0"]).exit_code == 2
    assert runner.invoke(app, ["nope"]).exit_code == 2


def test_the_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "mcp" in result.stdout
    assert "errors" in result.stdout
