"""The README documents every command, flag and environment variable."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mailtrap import Server
from mailtrap.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def _options() -> list[tuple[str, click.Option]]:
    assert isinstance(main, click.Group)
    return [
        (name, param)
        for name, command in main.commands.items()
        for param in command.params
        if isinstance(param, click.Option) and "--help" not in param.opts
    ]


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_a_section(command: str):
    assert f"### `mailtrap {command}`" in README


@pytest.mark.parametrize(("command", "option"), _options(), ids=lambda v: getattr(v, "name", v))
def test_every_flag_and_its_environment_variable_are_documented(command: str, option: click.Option):
    flag = next(opt for opt in option.opts if opt.startswith("--"))
    assert f"`{flag}" in README, f"{flag} of `mailtrap {command}` is missing from the README"
    assert option.envvar == "MAILTRAP_" + flag[2:].upper().replace("-", "_")
    assert f"`{option.envvar}`" in README


def test_version_flag_is_documented():
    assert "mailtrap --version" in README


def _code_block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r".*?```\w*\n(.*?)```", README, re.DOTALL)
    assert match, f"no code block after {marker!r}"
    return match[1]


def test_the_plain_python_example_delivers_to_mailtrap(server: Server):
    example = _code_block_after("**Plain Python**")
    assert '"127.0.0.1", 1025' in example
    exec(example.replace("1025", str(server.smtp_address.port)), {})
    (message_id,) = server.store.ids()
    row = server.store.get(message_id)
    assert (row["subject"], row["from_address"]) == ("Hello", "app@example.com")


def test_the_relay_config_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mailtrap.relay.config import load

    monkeypatch.setenv("SMARTHOST_PASSWORD", "secret")
    direct = _code_block_after("### Config file reference")
    smarthost = _code_block_after("A smarthost instead")
    (tmp_path / "direct.toml").write_text(direct)
    settings = load(tmp_path / "direct.toml")
    assert settings.mode == "mx" and settings.auto_relay and settings.forward
    # The CA file of the example does not exist here; everything else must load.
    (tmp_path / "ca.pem").write_text("")
    text = smarthost.replace("/etc/ssl/my-ca.pem", str(tmp_path / "ca.pem"))
    (tmp_path / "smarthost.toml").write_text(text)
    settings = load(tmp_path / "smarthost.toml")
    assert settings.smarthost is not None and settings.smarthost.password == "secret"
