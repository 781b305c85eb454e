"""Every command block of README.md and of the folder READMEs runs as written, in order.

The blocks run in a fresh working directory laid out like a checkout (the repository's top-level
entries linked in, no ``out/``), README.md first and then the folder READMEs, so each path a
command uses must be created by an earlier block. A block whose info string says ``gpu`` (needs
a GPU and the 11B weights), ``server`` (talks to a server started by hand in another shell),
``wandb`` (logs to a Weights & Biases account),
``slow`` (a benchmark that takes minutes) or ``ci`` (the two commands themselves: CI runs
``make test``, and ``tests/torchtune_ext/test_demo.py`` runs ``make demo``'s job) is not run; its files and ``make`` targets must exist and every flag it passes must be in
the command's ``--help``.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from testing_utils import REPO

#: The documents whose blocks run first, in this order; every other README.md follows, sorted.
FIRST = [
    "README.md",
    "torchtune_ext/data/README.md",
    "configs/README.md",
    "recipes/README.md",
    "eval/README.md",
]
DOCS = FIRST + sorted(
    str(p.relative_to(REPO))
    for p in REPO.rglob("README.md")
    if str(p.relative_to(REPO)) not in FIRST
    and not {"out", "tests", ".git"} & set(p.relative_to(REPO).parts)
    and not any(part.startswith(".venv") for part in p.parts)
)
#: Info-string words that mark a block as checked, not run.
NOT_RUN = {"gpu", "slow", "ci", "server", "wandb"}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    tags: frozenset[str]
    text: str

    @property
    def runs(self) -> bool:
        return not (self.tags & NOT_RUN)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks() -> list[Block]:
    """The bash blocks of every existing document, in run order."""
    found = []
    for doc in DOCS:
        path = REPO / doc
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            words = m.group(1).split()
            if words and words[0] in ("bash", "sh", "shell"):
                line = text.count("\n", 0, m.start()) + 1
                found.append(Block(doc, line, frozenset(words[1:]), m.group(2)))
    return found


def commands(block: Block) -> list[list[str]]:
    """The block's commands as argv lists (comments dropped, continuations joined)."""
    joined = re.sub(r"\\\n", " ", block.text)
    out = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        if line.strip():
            try:
                out.append(shlex.split(line))
            except ValueError:  # a heredoc body or other non-command text
                continue
    return out


def test_the_front_door_is_short_and_has_runnable_blocks() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 300
    found = blocks()
    assert any(b.doc == "README.md" and b.runs for b in found)
    assert any(b.doc == "README.md" and "gpu" in b.tags for b in found)


def _help_of(argv: list[str]) -> str | None:
    """``--help`` of a ``python -m MOD`` / ``python FILE`` command, or None if not one."""
    if argv[0] == "python" and len(argv) > 2 and argv[1] == "-m":
        cmd = ("-m", argv[2])
        if len(argv) > 3 and not argv[3].startswith("-"):  # a subcommand
            cmd += (argv[3],)
    elif argv[0] == "python" and len(argv) > 1 and argv[1].endswith(".py"):
        cmd = (argv[1],)
    else:
        return None
    return _help(cmd)


@functools.cache
def _help(cmd: tuple[str, ...]) -> str:
    cmd = (sys.executable, *cmd)
    proc = subprocess.run(
        [*cmd, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, f"{shlex.join(cmd)} --help failed:\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("block", [b for b in blocks() if not b.runs], ids=str)
def test_blocks_not_run_name_real_files_and_flags(block: Block) -> None:
    targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE)
    for argv in commands(block):
        if argv[0] == "make":
            assert set(argv[1:]) <= set(targets), f"{block}: no make target {argv[1:]} (have {targets})"
            continue
        for i, word in enumerate(argv):
            if word == "--config" or word.endswith((".yaml", ".py")) and not word.startswith("-"):
                target = argv[i + 1] if word == "--config" else word
                if target.startswith(("configs/", "benchmarks/", "recipes/", "eval/")):
                    assert (REPO / target).is_file(), f"{block}: {target} does not exist"
        help_text = _help_of(argv)
        if help_text is None:
            continue
        ours = argv[: argv.index("--")] if "--" in argv else argv  # after "--": the server's own flags
        for flag in (w.split("=", 1)[0] for w in ours if w.startswith("--")):
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", help_text), f"{block}: {flag} not in --help"


@pytest.mark.slow
def test_the_runnable_blocks_run_in_order_on_a_fresh_checkout(tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("out", "data", ".git", ".pytest_cache", ".ruff_cache"):
            (work / entry.name).symlink_to(entry)
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    for block in [b for b in blocks() if b.runs]:
        proc = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block.text], cwd=work, env=env,
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0:
            pytest.fail(
                f"{block} exited {proc.returncode}:\n{block.text}\n--- stdout\n{proc.stdout[-3000:]}"
                f"\n--- stderr\n{proc.stderr[-5000:]}"
            )
