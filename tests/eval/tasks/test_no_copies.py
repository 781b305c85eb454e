"""The W-2 prompt and field list exist once, in eval/tasks/w2/schema.py; every other file imports them.

Scans every file git tracks (text files only) for the prompt text and for runs of field
names close together (a copied list, dict or schema). Single field names are fine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from eval.tasks.w2 import FIELDS, PROMPT

ROOT = Path(__file__).resolve().parents[3]
DEFINITION = "eval/tasks/w2/schema.py"
#: This many distinct field names within WINDOW characters count as a copied list.
MIN_NAMES = 5
WINDOW = 800
#: A distinctive part of the prompt, to also catch copies split over string literals or lines.
PROMPT_FRAGMENT = " ".join(PROMPT.lower().rstrip(".").split()[-3:])

_FIELD_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, FIELDS), key=len, reverse=True)) + r")\b")


def prompt_copied(text: str) -> bool:
    """Whether ``text`` holds the prompt (whole, or its distinctive fragment, any spacing/case)."""
    flat = re.sub(r"\s+", " ", text).lower()
    return PROMPT.lower() in flat or PROMPT_FRAGMENT in flat


def field_list_copied(text: str) -> list[str]:
    """Distinct field names found within one window, if at least MIN_NAMES of them (else [])."""
    hits = [(m.start(), m.group(1)) for m in _FIELD_RE.finditer(text)]
    for i, (start, _) in enumerate(hits):
        names = {name for pos, name in hits[i:] if pos - start <= WINDOW}
        if len(names) >= MIN_NAMES:
            return sorted(names)
    return []


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:  # pragma: no cover - needs a git checkout
        pytest.skip(f"not a git checkout ({e})")
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if not name or name == DEFINITION or not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        files.append(path)
    return files


def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def test_detectors_flag_copies_and_allow_single_names() -> None:
    assert prompt_copied(f'x = "{PROMPT}"')
    split = PROMPT[:20] + '"\n    "' + PROMPT[20:]
    assert prompt_copied(split)
    assert not prompt_copied("Parse this form.")
    listing = ",\n".join(f'    "{name}": str' for name in FIELDS[10:16])
    assert len(field_list_copied(listing)) == 6
    assert field_list_copied(" ".join(FIELDS[:4])) == []
    far_apart = ("\n" + " " * WINDOW).join(FIELDS[:6])
    assert field_list_copied(far_apart) == []


def test_prompt_and_field_list_defined_only_once() -> None:
    files = _tracked_text_files()
    assert any(p.suffix == ".py" for p in files), "git ls-files found no Python files"
    copies = []
    for path in files:
        text = _read_text(path)
        if text is None:
            continue
        rel = path.relative_to(ROOT).as_posix()
        if prompt_copied(text):
            copies.append(f"{rel}: holds the prompt text (import eval.tasks.w2.PROMPT)")
        names = field_list_copied(text)
        if names:
            copies.append(f"{rel}: lists W-2 fields {names[:MIN_NAMES]}... (use eval.tasks.w2.FIELDS)")
    assert not copies, "copies of the W-2 task definition:\n" + "\n".join(copies)


def test_definition_file_is_the_one_scanned_out() -> None:
    text = (ROOT / DEFINITION).read_text()
    assert prompt_copied(text) and len(field_list_copied(text)) >= MIN_NAMES
