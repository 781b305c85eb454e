"""ShareGPT / LLaMA-Factory JSON: read it (``ingest``), write it (``python -m ...documents.sharegpt``).

The format LLaMA-Factory reads for multimodal supervised fine-tuning: a JSON list of rows, each
with one conversation and its images. Two spellings are read and written:

* ``messages`` (OpenAI style)::

    {"messages": [{"role": "user", "content": "<image>Extract the fields of ..."},
                  {"role": "assistant", "content": "{\\"invoice_number\\": \\"INV-000123\\", ...}"}],
     "images": ["images/3f2a9c1e4b7d0a11-p1.png"], "id": "3f2a9c1e4b7d0a11-p1", "doc_id": "3f2a...", "page": 1}

* ``conversations`` (the original ShareGPT): ``{"conversations": [{"from": "human", "value": ...},
  {"from": "gpt", "value": ...}], "images": [...]}``.

Reading: the first user turn (``user``/``human``) is the prompt, the last assistant turn
(``assistant``/``gpt``) must be the JSON object of the page (the target); ``system`` turns are
ignored; exactly one image, relative to the JSON file's directory. ``id``, ``doc_id`` and ``page``
are used when present.

Writing (``export``)::

    python -m torchtune_ext.data.documents.sharegpt --data data/invoices/train \\
        --schema data/invoices/schema.json --output-dir ~/LLaMA-Factory/data --name invoices_train

writes ``OUT/<name>.json`` (prompt and answer from the extract task, image first), the images in
``OUT/<name>_images/``, and adds the entry ``<name>`` to ``OUT/dataset_info.json`` (other entries
kept), so LLaMA-Factory trains on it with ``dataset: invoices_train``. Reading an export back
with ``ingest`` gives the same pages: ids, documents, page numbers, targets and image bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError
from eval.tasks.extract import load_extract
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.data.documents.pages import copy_file

__all__ = ["DATASET_INFO", "STYLES", "SharegptPage", "export_sharegpt", "main", "read_sharegpt"]

#: LLaMA-Factory's dataset registry file.
DATASET_INFO = "dataset_info.json"
#: The two spellings: key of the turn list, role key, content key, user role, assistant role.
STYLES: dict[str, tuple[str, str, str, str, str]] = {
    "messages": ("messages", "role", "content", "user", "assistant"),
    "conversations": ("conversations", "from", "value", "human", "gpt"),
}
_USER = {"user", "human"}
_ASSISTANT = {"assistant", "gpt"}
#: LLaMA-Factory's image placeholder in a turn's text.
IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class SharegptPage:
    """One row of a ShareGPT file.

    Attributes:
        where (str): ``file#index`` for messages.
        image (Path): the image file.
        target (dict[str, Any]): the assistant turn's JSON object.
        prompt (str): the user turn's text, without the image placeholder.
        id (Optional[str]): the row's ``id``, if any.
        doc_id (Optional[str]): the row's ``doc_id``, if any.
        page (Optional[int]): the row's ``page``, if any.
    """

    where: str
    image: Path
    target: dict[str, Any]
    prompt: str
    id: Optional[str] = None
    doc_id: Optional[str] = None
    page: Optional[int] = None


def _turns(row: dict[str, Any], where: str) -> list[tuple[str, str]]:
    for key, role_key, content_key, _, _ in STYLES.values():
        turns = row.get(key)
        if turns is None:
            continue
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise DatasetRowError(f"{where}: {key!r} must be a list of objects")
        out = []
        for k, turn in enumerate(turns):
            role, content = turn.get(role_key), turn.get(content_key)
            if not isinstance(role, str) or not isinstance(content, str):
                raise DatasetRowError(f"{where}: {key}[{k}] needs string {role_key!r} and {content_key!r}")
            out.append((role, content))
        return out
    raise DatasetRowError(f"{where}: a row needs 'messages' or 'conversations'")


def _parse_row(row: Any, root: Path, where: str) -> SharegptPage:
    if not isinstance(row, dict):
        raise DatasetRowError(f"{where}: expected a JSON object, got {type(row).__name__}")
    turns = _turns(row, where)
    users = [c for r, c in turns if r in _USER]
    answers = [c for r, c in turns if r in _ASSISTANT]
    if not users or not answers:
        raise DatasetRowError(f"{where}: needs a user turn and an assistant turn")
    try:
        target = json.loads(answers[-1])
    except ValueError as exc:
        raise DatasetRowError(f"{where}: the assistant turn is not JSON ({exc})") from exc
    if not isinstance(target, dict):
        raise DatasetRowError(f"{where}: the assistant turn must be a JSON object")
    images = row.get("images")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        raise DatasetRowError(f"{where}: 'images' must list exactly one image path (one page per row)")
    image = (root / images[0]).resolve()
    if not image.is_file():
        raise DatasetRowError(f"{where}: image not found: {image}")
    page = row.get("page")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
        raise DatasetRowError(f"{where}: 'page' must be an integer >= 1")
    for key in ("id", "doc_id"):
        if row.get(key) is not None and not isinstance(row[key], (str, int)):
            raise DatasetRowError(f"{where}: {key!r} must be a string")
    return SharegptPage(
        where=where,
        image=image,
        target=target,
        prompt=users[0].replace(IMAGE_TOKEN, "").strip(),
        id=None if row.get("id") is None else str(row["id"]),
        doc_id=None if row.get("doc_id") is None else str(row["doc_id"]),
        page=page,
    )


def read_sharegpt(path: Path) -> tuple[list[SharegptPage], list[str]]:
    """Read a ShareGPT / LLaMA-Factory JSON file.

    Args:
        path (Path): the file (a JSON list of rows).

    Returns:
        tuple[list[SharegptPage], list[str]]: the pages, and one ``file#index: reason`` per bad row.

    Raises:
        DatasetRowError: if the file is not a JSON list (names the file).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetRowError(f"{path}: not a JSON file ({exc})") from exc
    if not isinstance(data, list):
        raise DatasetRowError(f"{path}: a ShareGPT file must hold a JSON list of rows")
    pages, bad = [], []
    for i, row in enumerate(data):
        try:
            pages.append(_parse_row(row, path.parent, f"{path}#{i}"))
        except DatasetRowError as exc:
            bad.append(str(exc))
    return pages, bad


def export_sharegpt(
    data: str | Path,
    schema: str | Path,
    output_dir: str | Path,
    name: str,
    *,
    style: str = "messages",
    prompt_file: Optional[str | Path] = None,
) -> Path:
    """Write an extract dataset split as a LLaMA-Factory dataset (layout in the module docstring).

    Args:
        data (str | Path): an extract split (``data.jsonl`` or its directory).
        schema (str | Path): the schema file (targets are validated; the prompt is made from it).
        output_dir (str | Path): the LLaMA-Factory data directory.
        name (str): the dataset name (file ``<name>.json``, entry in ``dataset_info.json``).
        style (str): ``messages`` or ``conversations``.
        prompt_file (Optional[str | Path]): a prompt file instead of the generated prompt.

    Returns:
        Path: the written ``<name>.json``.

    Raises:
        ValueError: for an unknown style, a bad name, a bad row or an unreadable ``dataset_info.json``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose {' or '.join(STYLES)}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad dataset name {name!r}")
    task = ExtractTask(schema, prompt_file)
    loaded = load_extract(data, task.schema)
    key, role_key, content_key, user, assistant = STYLES[style]
    out = Path(output_dir)
    images_dir = f"{name}_images"
    rows = []
    for record in loaded.records:
        image_rel = f"{images_dir}/{record.id}{record.image.suffix.lower()}"
        copy_file(record.image, out / image_rel)
        rows.append(
            {
                key: [
                    {role_key: user, content_key: IMAGE_TOKEN + task.instruction()},
                    {role_key: assistant, content_key: task.answer(task.sample_target(record))},
                ],
                "images": [image_rel],
                "id": record.id,
                "doc_id": record.doc_id,
                "page": record.page,
            }
        )
    target = out / f"{name}.json"
    target.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    info_path = out / DATASET_INFO
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{info_path}: not valid JSON ({exc}); fix or move it") from exc
        if not isinstance(info, dict):
            raise ValueError(f"{info_path}: expected a JSON object of datasets")
    entry: dict[str, Any] = {
        "file_name": target.name,
        "formatting": "sharegpt",
        "columns": {"messages": key, "images": "images"},
    }
    if style == "messages":
        entry["tags"] = {
            "role_tag": role_key,
            "content_tag": content_key,
            "user_tag": user,
            "assistant_tag": assistant,
        }
    info[name] = entry
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Export one split for LLaMA-Factory.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 on success, 2 on bad input (``error: ...``).
    """
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.documents.sharegpt",
        description="Write an extract split as a LLaMA-Factory (ShareGPT) dataset with its dataset_info.json entry.",
    )
    p.add_argument(
        "--data", type=Path, required=True, help="an extract split directory (data.jsonl + images)"
    )
    p.add_argument("--schema", type=Path, required=True, help="the JSON Schema file")
    p.add_argument("--output-dir", type=Path, required=True, help="LLaMA-Factory data directory (created)")
    p.add_argument("--name", required=True, help="dataset name (OUT/<name>.json, dataset_info.json entry)")
    p.add_argument(
        "--style", choices=sorted(STYLES), default="messages", help="turn spelling (default: messages)"
    )
    p.add_argument(
        "--prompt_file", "--prompt-file", type=Path, default=None, help="prompt file for the user turn"
    )
    args = p.parse_args(argv)
    try:
        path = export_sharegpt(
            args.data, args.schema, args.output_dir, args.name, style=args.style, prompt_file=args.prompt_file
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = len(json.loads(path.read_text(encoding="utf-8")))
    print(f"wrote {n} rows to {path} and the entry {args.name!r} to {args.output_dir / DATASET_INFO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
