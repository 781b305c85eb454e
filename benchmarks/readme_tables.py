"""Publish a benchmark's Markdown table into a README, between its markers.

A README holds, for each table a benchmark produces::

    <!-- table:NAME -->
    ...whatever the last run wrote...
    <!-- /table:NAME -->

:func:`publish` replaces what is between the markers with the table and one line naming the
command, the machine and the date, so rerunning the benchmark rewrites the table and nobody
types a measured number. Every benchmark script takes ``--readme FILE`` and calls it.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["cpu_name", "machine", "markdown_table", "publish", "readme_argument"]


def cpu_name() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or the platform's processor string).

    Returns:
        str: e.g. ``"Intel(R) Xeon(R) Processor"``.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """What a measurement ran on: CPU, cores, and the GPU when torch sees one.

    Returns:
        str: e.g. ``"Intel(R) Xeon(R) Processor, 2 cores, x86_64"``.
    """
    parts = [cpu_name(), f"{os.cpu_count()} cores", platform.machine()]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        parts.insert(0, torch.cuda.get_device_name(0))
    return ", ".join(parts)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table.

    Args:
        header (Sequence[str]): column names.
        rows (Sequence[Sequence[object]]): one sequence of cells per row (formatted with ``str``).

    Returns:
        str: the table, one line per row, no trailing newline.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(readme: str | Path, name: str, table: str, command: Sequence[str]) -> Path:
    """Replace the block between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``.

    Args:
        readme (str | Path): the README to update.
        name (str): the table's name in the markers.
        table (str): the Markdown to put there.
        command (Sequence[str]): the command that produced it (shown under the table).

    Returns:
        Path: the README.

    Raises:
        ValueError: if the README lacks the markers (the message names them).
    """
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path}: no {start} ... {end} block to write the table into")
    shown = shlex.join(["python", *command])
    stamp = f"_Measured by `{shown}` on {machine()}, {datetime.date.today().isoformat()}._"
    block = f"{start}\n{table}\n\n{stamp}\n{end}"
    path.write_text(pattern.sub(lambda _: block, text, count=1), encoding="utf-8")
    return path


def readme_argument(parser: object, default_name: str) -> None:
    """Add the ``--readme FILE`` flag every benchmark takes.

    Args:
        parser (object): an ``argparse.ArgumentParser``.
        default_name (str): the table's marker name, for the help text.
    """
    parser.add_argument(  # type: ignore[attr-defined]
        "--readme",
        default=None,
        help=f"also write the table into this README, between its <!-- table:{default_name} --> markers",
    )
