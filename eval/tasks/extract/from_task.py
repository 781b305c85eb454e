"""Write another task's answer schema (and prompt) as files the extract task reads.

This is how a fixed task becomes an instance of the extract task, e.g. W-2::

    python -m eval.tasks.extract.from_task w2 --output w2.schema.json --prompt-output w2.prompt.txt \\
        --compare box_a_employee_ssn=digits --compare box_b_employer_identification_number=digits
    python -m eval.extract --schema w2.schema.json --prompt_file w2.prompt.txt --dataset ... --model ...

The schema is the task's own (``Task.json_schema()``; for W-2 the pydantic ``W2Form`` schema),
written as UTF-8 JSON; ``--compare PATH=KIND`` adds ``x-compare`` to a top-level property
(``digits`` for identification numbers, as the W-2 task compares them). The prompt file holds the
task's instruction verbatim. Exit status 2 with ``error: ...`` for an unknown task, a task
without a schema or a fixed prompt, or a bad ``--compare``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from eval.tasks.extract.schema import COMPARE_KEY, COMPARE_KINDS, SchemaFileError, schema_from_dict

__all__ = ["main", "task_schema"]


def task_schema(name: str, compare: Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """The JSON schema of a registered task's answer, with ``x-compare`` annotations added.

    Args:
        name (str): the task (``w2``, ``classify``, ...).
        compare (Sequence[str]): ``PATH=KIND`` entries for top-level properties.
        **options (Any): the task's options (e.g. ``labels=...`` for classify).

    Returns:
        dict[str, Any]: the schema, checked as an extraction schema.

    Raises:
        ValueError: for an unknown task, a task without a schema, or a bad ``compare`` entry.
    """
    from eval.tasks import UnknownTaskError, get_task

    try:
        task = get_task(name).from_options(**options)
    except UnknownTaskError as exc:
        raise ValueError(str(exc)) from exc
    schema = task.json_schema()
    if schema is None:
        raise ValueError(f"task {name!r} has no answer schema")
    schema = json.loads(json.dumps(schema))
    props = schema.get("properties", {})
    for entry in compare:
        path, sep, kind = entry.partition("=")
        if not sep or kind not in COMPARE_KINDS:
            raise ValueError(
                f"--compare {entry!r}: expected PATH=KIND, KIND one of {', '.join(COMPARE_KINDS)}"
            )
        if path not in props:
            raise ValueError(f"--compare {entry!r}: the {name} schema has no property {path!r}")
        props[path][COMPARE_KEY] = kind
    schema_from_dict(schema, f"<{name} schema>")
    return schema


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the schema (and prompt) files.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 on success, 2 on bad input.
    """
    p = argparse.ArgumentParser(
        prog="python -m eval.tasks.extract.from_task",
        description="Write a registered task's answer schema (and prompt) for python -m eval.extract.",
    )
    p.add_argument("task", help="a registered task with a schema, e.g. w2")
    p.add_argument("--output", type=Path, required=True, help="schema file to write")
    p.add_argument("--prompt-output", type=Path, default=None, help="also write the task's prompt here")
    p.add_argument("--compare", action="append", default=[], help="PATH=KIND: add x-compare to a property")
    p.add_argument("--option", action="append", default=[], help="KEY=VALUE: a task option (e.g. labels=...)")
    args = p.parse_args(argv)
    try:
        options = dict(o.split("=", 1) for o in args.option if "=" in o)
        if len(options) != len(args.option):
            raise ValueError("--option expects KEY=VALUE")
        schema = task_schema(args.task, args.compare, **options)
        prompt = None
        if args.prompt_output is not None:
            from eval.tasks import get_task

            prompt = get_task(args.task).from_options(**options).instruction()
            if prompt is None:
                raise ValueError(f"task {args.task!r} has no fixed prompt (it asks per row)")
    except (ValueError, SchemaFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    if prompt is not None:
        args.prompt_output.write_text(prompt + "\n", encoding="utf-8")
        print(f"wrote {args.prompt_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
