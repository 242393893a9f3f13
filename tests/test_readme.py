"""The README's console examples run as written.

Every ```console block of README.md runs, in README order, in one fresh directory that
holds a copy of ``fixtures/`` (what a reader following the README has), each block in its
own bash process (so ``export`` and shell variables carry over within a block), with the
installed ``sltd`` first on PATH and no inherited ``SLTD_*`` settings. A line starting
with ``$ `` is a command; the lines after it, up to the next command, are its stdout and
stderr together. As with doctest's ELLIPSIS, ``...`` in an expected line matches any text
within that line, and a line that is only ``...`` matches any number of lines; trailing
whitespace is ignored. A command that exits with 2 or more (usage error, error) fails.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # the venv's bin, where `pip install` puts `sltd`
PROMPT = "$ "


@dataclasses.dataclass(frozen=True)
class Command:
    line: int  # README line number of the command
    text: str
    expected: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Block:
    line: int  # README line number of the opening fence
    commands: tuple[Command, ...]


@dataclasses.dataclass(frozen=True)
class Ran:
    output: str | None  # None: the block's shell stopped before this command
    status: int | None


def console_blocks(text: str) -> list[Block]:
    """The ```console blocks of a Markdown text, as commands and their expected lines."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        start, i = i + 1, i + 1
        commands: list[tuple[int, str, list[str]]] = []
        while i < len(lines) and lines[i].strip() != "```":
            if lines[i].startswith(PROMPT):
                commands.append((i + 1, lines[i][len(PROMPT):], []))
            elif commands:
                commands[-1][2].append(lines[i])
            else:
                raise ValueError(f"README.md line {i + 1}: console block output before "
                                 f"any `$ ` command: {lines[i]!r}")
            i += 1
        blocks.append(Block(start, tuple(Command(n, cmd, tuple(out))
                                         for n, cmd, out in commands)))
        i += 1
    return blocks


def _trimmed(lines: Sequence[str]) -> list[str]:
    out = [line.rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def matches(expected: Sequence[str], got: str) -> bool:
    """Whether ``got`` is what ``expected`` describes (``...`` wildcards, see above)."""
    pattern = ""
    for line in _trimmed(expected):
        if line.strip() == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*?".join(re.escape(part) for part in line.split("...")) + r"\n"
    text = "".join(line + "\n" for line in _trimmed(got.splitlines()))
    return re.fullmatch(pattern, text) is not None


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLTD_") and k not in ("BASH_ENV", "ENV", "CDPATH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SLTD_DB"] = "sltd.duckdb"  # the default, said explicitly: relative to the block's dir
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as on a terminal
    # the code of this checkout, even where the installed sltd is another's (a worktree)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_block(block: Block, cwd: Path) -> list[Ran]:
    """Run a block's commands in one bash process; each command's output and status."""
    marker = f"--readme-{secrets.token_hex(8)}--"
    script = "exec 2>&1\n" + "".join(
        f"{c.text}\nprintf '\\n{marker} %d\\n' \"$?\"\n" for c in block.commands)
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=cwd,
                          env=_environment(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                          check=False)
    pieces = re.split(rf"\n{re.escape(marker)} (\d+)\n", proc.stdout.decode(errors="replace"))
    ran = [Ran(out, int(status)) for out, status in zip(pieces[0::2], pieces[1::2],
                                                         strict=False)]
    return ran + [Ran(None, None)] * (len(block.commands) - len(ran))


BLOCKS = console_blocks(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[Ran]]:
    """Every block run once, in README order, in one directory (later ones build on
    earlier ones, as for a reader)."""
    if shutil.which("sltd", path=str(BIN)) is None:
        pytest.fail(f"no `sltd` executable in {BIN}: install the package (pip install -e .)")
    workdir = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "fixtures", workdir / "fixtures")
    return {block.line: run_block(block, workdir) for block in BLOCKS}


def test_the_readme_has_console_examples():
    assert len(BLOCKS) >= 3
    assert all(block.commands for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"line-{b.line}" for b in BLOCKS])
def test_console_example_prints_what_the_readme_shows(block, transcript):
    problems = []
    for command, ran in zip(block.commands, transcript[block.line], strict=True):
        where = f"README.md line {command.line}: $ {command.text}"
        if ran.output is None:
            problems.append(f"{where}\nnever ran: the block's shell stopped before it")
            continue
        got = ran.output.rstrip() or "(nothing)"
        if ran.status is None or ran.status >= 2:
            problems.append(f"{where}\nfailed with exit status {ran.status}:\n{got}")
        elif not matches(command.expected, ran.output):
            expected = "\n".join(command.expected) or "(nothing)"
            problems.append(f"{where}\n--- expected:\n{expected}\n"
                            f"--- got (exit status {ran.status}):\n{got}")
    if problems:
        pytest.fail(f"console block at README.md line {block.line}:\n\n"
                    + "\n\n".join(problems), pytrace=False)


@pytest.mark.parametrize(("expected", "got", "result"), [
    (["abc"], "abc\n", True),
    (["abc"], "abd\n", False),
    (["hit_id=h...  (score 89)"], "hit_id=hq7x  (score 89)\n", True),
    (["in ... s"], "in 0.3\ns\n", False),  # a `...` within a line stays in that line
    (["first", "...", "last"], "first\nlast\n", True),
    (["first", "...", "last"], "first\na\nb\nlast\n", True),
    (["first", "...", "last"], "first\na\n", False),
    ([], "", True),
    ([], "anything\n", False),  # a command shown without output must print nothing
    (["abc  "], "abc\n\n", True),  # trailing whitespace and blank lines are ignored
])
def test_ellipsis_matching(expected, got, result):
    assert matches(expected, got) is result
