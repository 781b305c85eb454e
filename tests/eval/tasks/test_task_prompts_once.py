"""The classification, detection, DocVQA and extraction prompts exist once, in their eval/tasks module.

Scans every file git tracks for a distinctive fragment of each prompt (any spacing or case),
so a prompt copied into a builder, a config or the evaluator fails here.
"""

import re
import subprocess
from pathlib import Path

import pytest

from eval.tasks import classify, detect, docvqa, extract

ROOT = Path(__file__).resolve().parents[3]
FRAGMENTS = {
    "eval/tasks/classify/labels.py": "Which one of these labels fits this image?",
    "eval/tasks/detect/boxes.py": "integer corners on a 0-1000 grid",
    "eval/tasks/docvqa/answers.py": "Answer the question using the text in this document.",
    "eval/tasks/extract/answers.py": "Use null for a value the page does not show.",
}


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def test_fragments_are_in_the_prompts():
    assert FRAGMENTS["eval/tasks/classify/labels.py"] in classify.prompt(["A", "B"])
    assert FRAGMENTS["eval/tasks/detect/boxes.py"] in detect.prompt()
    assert FRAGMENTS["eval/tasks/docvqa/answers.py"] in docvqa.prompt("q")
    nullable = extract.schema_from_dict({"type": "object", "properties": {"a": {"type": ["string", "null"]}}})
    assert FRAGMENTS["eval/tasks/extract/answers.py"] in extract.default_prompt(nullable)


def test_each_prompt_is_defined_once():
    try:
        files = (
            subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30)
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError) as e:  # pragma: no cover - needs a git checkout
        pytest.skip(f"not a git checkout ({e})")
    here = str(Path(__file__).relative_to(ROOT))
    found: dict[str, list[str]] = {k: [] for k in FRAGMENTS}
    for name in filter(None, files):
        path = ROOT / name
        try:
            text = _flat(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        for home, fragment in FRAGMENTS.items():
            if _flat(fragment) in text and name != here:
                found[home].append(name)
    assert found == {home: [home] for home in FRAGMENTS}
