"""The README a newcomer reads: its generated part is current, its quickstart is two commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.catalog import (
    COMMON_CODES,
    README_BEGIN,
    README_END,
    Catalog,
    load_catalog,
    troubleshooting_markdown,
    update_readme,
)

README = Path(__file__).parents[1] / "README.md"


def _between(text: str, begin: str, end: str) -> str:
    assert text.count(begin) == 1, f"one {begin!r} expected"
    return text.split(begin, 1)[1].split(end, 1)[0]


def test_the_troubleshooting_section_is_what_the_catalog_generates() -> None:
    generated = _between(README.read_text(encoding="utf-8"), README_BEGIN, README_END)

    assert generated == "\n" + troubleshooting_markdown(), (
        "README.md's troubleshooting section is out of date: run "
        "`python -m tools.catalog --troubleshooting --update README.md`"
    )


def test_every_common_code_is_explained_with_what_to_do() -> None:
    text = troubleshooting_markdown()
    for vendor, code in COMMON_CODES:
        entry = load_catalog().get(vendor, code)
        assert entry is not None
        assert f" {code}** · `{entry.message}`" in text
        assert entry.action in text


def test_a_code_missing_from_the_catalog_fails_the_generator() -> None:
    shrunk = Catalog([e for e in load_catalog().entries if e.code != COMMON_CODES[0][1]])
    with pytest.raises(KeyError, match=COMMON_CODES[0][1]):
        troubleshooting_markdown(shrunk)


def test_update_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{README_BEGIN}\nOUTDATED-TEXT\n{README_END}\n\n## after\n")

    assert update_readme(readme)
    assert not update_readme(readme)  # already current
    text = readme.read_text()
    assert text.startswith(f"# top\n\n{README_BEGIN}\n")
    assert text.endswith(f"{README_END}\n\n## after\n")
    assert "OUTDATED-TEXT" not in text


def test_the_quickstart_is_exactly_two_commands() -> None:
    quickstart = _between(README.read_text(encoding="utf-8"), "## Quickstart\n", "\n## ")
    blocks = re.findall(r"```sh\n(.*?)```", quickstart, flags=re.DOTALL)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]

    assert [command for command in commands if command] == ["./dev tour", "./dev test"]


def test_the_tool_table_names_every_mcp_tool() -> None:
    from server.mcp_server import TOOL_NAMES

    intro = README.read_text(encoding="utf-8").split("## Quickstart", 1)[0]
    for tool in TOOL_NAMES:
        assert f"| `{tool}` |" in intro


def test_every_json_snippet_parses_and_mcp_remote_headers_hold_no_space() -> None:
    """A client config pasted from the README works: valid JSON, and `mcp-remote`'s
    `--header` written as its docs say (`Authorization:${AUTH_HEADER}`, the value in `env`),
    since some Windows clients split an argument with a space in it."""
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    headers = []
    for block in blocks:
        config = json.loads(block)
        for server in config.get("mcpServers", {}).values():
            args = server.get("args", [])
            if "mcp-remote" in args:
                headers += [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--header"]
                assert " " not in "".join(args), args
                assert all(v.startswith("Bearer ") for v in server.get("env", {}).values())
    assert "Authorization:${AUTH_HEADER}" in headers
