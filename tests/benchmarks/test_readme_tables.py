"""Benchmark tables are written by the scripts that measure them, between README markers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from readme_tables import markdown_table, publish
from testing_utils import REPO, run_cmd

DOCS = sorted(p for p in REPO.rglob("README.md") if ".venv" not in p.parts and "out" not in p.parts)


def test_publish_replaces_only_its_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- table:a -->\nold\n<!-- /table:a -->\nmiddle\n<!-- table:b -->\n<!-- /table:b -->\n"
    )
    table = markdown_table(["x", "y"], [[1, "2.00"]])
    publish(readme, "a", table, ["benchmarks/x.py", "--n", "3"])
    text = readme.read_text()
    assert "old" not in text and "| x | y |\n|---|---|\n| 1 | 2.00 |" in text
    assert "_Measured by `python benchmarks/x.py --n 3` on " in text and "cores" in text
    assert text.count("<!-- table:b -->\n<!-- /table:b -->") == 1 and text.startswith("intro\n")
    publish(readme, "a", markdown_table(["x"], [[5]]), ["benchmarks/x.py"])  # a rerun rewrites it
    assert "| 1 | 2.00 |" not in readme.read_text() and "| 5 |" in readme.read_text()
    with pytest.raises(ValueError, match="no <!-- table:c --> ... <!-- /table:c --> block"):
        publish(readme, "c", table, ["benchmarks/x.py"])


def test_every_table_marker_has_the_script_that_writes_it() -> None:
    writers = "\n".join(p.read_text() for p in (REPO / "benchmarks").glob("*.py"))
    # a marker is a line of its own (as publish writes it); one quoted in prose is not a table
    markers = {
        m for doc in DOCS for m in re.findall(r"^<!-- table:([\w-]+) -->$", doc.read_text(), re.MULTILINE)
    }
    assert {"w2_dataset", "linear_ce", "vision_encoder", "w2_reference_parser"} <= markers
    for name in markers:
        assert re.search(rf'"{name}"', writers), f"no benchmark script writes table {name!r}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "name", "args"),
    [
        ("vision_encoder.py", "vision_encoder", ["--repeats", "1", "--batch", "1"]),
        ("linear_ce.py", "linear_ce", ["--tokens", "24", "--dim", "16", "--vocab", "64", "--chunks", "2"]),
        ("w2_generator.py", "w2_generator", ["--num", "6", "--serial-num", "3", "--workers", "1"]),
        (
            "eval_client_overhead.py",
            "eval_client_overhead",
            ["--requests", "4", "--repeats", "1", "--workers", "1"],
        ),
    ],
)
def test_small_runs_write_their_table(script: str, name: str, args: list[str], tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"<!-- table:{name} -->\n<!-- /table:{name} -->\n")
    run_cmd(["python", f"benchmarks/{script}", *args, "--readme", str(readme)], timeout=300)
    text = readme.read_text()
    assert text.count("\n|---") == 1 and f"_Measured by `python benchmarks/{script} " in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 2  # header + at least one measured row
