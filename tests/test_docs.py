"""The README and --help stay true to the commands."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from sltd.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(name):
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0
    assert len(cli.commands[name].help or "") > 20
    assert f"sltd {name}" in README


def setup_commands():
    block = README.split("```")[1].strip().splitlines()
    assert block[0] == "sh"
    return [line.strip() for line in block[1:]]


def test_readme_opens_with_exactly_two_setup_commands():
    assert README.startswith("# sltd\n\n```sh\n")
    demo, tests = setup_commands()
    assert demo == "pip install . && python -m sltd demo"
    assert tests.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert setup_commands()[1] in ci.splitlines()
