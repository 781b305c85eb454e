"""Our accuracy_strict vs the reference evaluator's reading of replies: same rule, different parser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from testing_utils import REPO
from w2_reference_parser import STYLES, compare, main, reference_parse


def test_the_reimplemented_reference_parser_repairs_and_breaks_as_the_original() -> None:
    assert reference_parse("") == ({}, True)
    assert reference_parse("{'a': 'x', 'b': 2,}") == ({"a": "x", "b": 2}, False)  # quotes, trailing comma
    assert reference_parse("Sure: {a: 1, b: 2}") == ({"a": 1, "b": 2}, False)  # unquoted keys
    assert reference_parse('{"a": None, "b": 1}') == ({"a": None, "b": 1}, False)
    assert reference_parse('{"a": 1, "b": None}') == ({}, True)  # only ": None," is repaired
    assert reference_parse('{"a": "O\'Brien", "b": "Macy\'s"}') == ({}, True)  # two apostrophes
    assert reference_parse('{"a": "O\'Brien"}') == ({"a": "O'Brien"}, False)  # one is fine
    assert reference_parse('```json\n{"a": 1}\n``` and {"b": 2}') == ({"a": 1}, False)
    assert reference_parse('{"a": "12\n34", "b": 1}') == ({"a": "1234", "b": 1}, False)


def test_the_two_numbers_agree_on_content_and_differ_only_by_parser() -> None:
    rows = {r["style"]: r for r in compare(n=20, seed=1)}
    assert set(rows) == {*STYLES, "mix of all styles (random per document)"}
    for same in ("compact JSON (what training teaches)", "JSON in a code fence", "JSON after a sentence",
                 "indented JSON", "cut off (max_tokens)"):  # fmt: skip
        assert rows[same]["ours"] == rows[same]["reference"], same
    assert rows["compact JSON, five values wrong"]["ours"] == pytest.approx(40 / 45)
    assert rows["compact JSON, five values wrong"]["reference"] == pytest.approx(40 / 45)
    for repaired in ("trailing comma", "unquoted keys", "Python dict repr", "raw line break inside a value"):
        assert rows[repaired]["ours"] == 0.0 and rows[repaired]["reference"] >= 0.9, repaired
    assert (
        rows["apostrophes in two names"]["ours"] == 1.0
        and rows["apostrophes in two names"]["reference"] == 0.0
    )


def test_readme_writes_the_table_between_its_markers_in_eval_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "eval" / "README.md", readme)
    start, end = "<!-- table:w2_reference_parser -->", "<!-- /table:w2_reference_parser -->"
    before = readme.read_text(encoding="utf-8")
    assert before.count(start) == 1 and before.count(end) == 1
    assert main(["--docs", "4", "--readme", str(readme)]) == 0
    after = readme.read_text(encoding="utf-8")
    head, rest = after.split(start)
    block, tail = rest.split(end)
    assert head == before.split(start)[0] and tail == before.split(end)[1]  # only the block changes
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| reply style | ours: accuracy_strict | reference: accuracy |")
    assert {row.split(" | ")[0][2:] for row in rows[1:]} == {
        *STYLES,
        "mix of all styles (random per document)",
    }
    assert re.search(
        r"_Measured by `python benchmarks/w2_reference_parser.py --docs 4 --readme \S+` on .+cores", block
    )
