"""Every console entry point in pyproject.toml is installed and answers --help like its module."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from testing_utils import REPO

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize(("name", "target"), sorted(SCRIPTS.items()))
def test_console_script_matches_its_module(name: str, target: str) -> None:
    script = Path(sys.executable).parent / name
    assert script.is_file(), f"{name} is not installed (pip install -e . installs it)"
    module, _, func = target.partition(":")
    assert func == "main"
    via_script = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    # The script's own interpreter (its shebang): help texts show it as a default.
    python = script.read_text().splitlines()[0].removeprefix("#!").strip()
    via_module = subprocess.run(
        [python, "-m", module.removesuffix(".__main__"), "--help"], cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert via_script.returncode == via_module.returncode == 0, via_script.stderr + via_module.stderr
    assert (
        via_script.stdout.split("\n", 1)[1] == via_module.stdout.split("\n", 1)[1]
    )  # same text past "usage:"
