"""The schema-driven extraction task: your JSON Schema, your pages, nested scores.

The definition lives in :mod:`eval.tasks.extract.schema` (the schema file) and
:mod:`eval.tasks.extract.answers` (prompt, target), the row reader in
:mod:`eval.tasks.extract.reader`, the metrics in :mod:`eval.tasks.extract.metrics` (with
:mod:`~eval.tasks.extract.assignment` and :mod:`~eval.tasks.extract.edit_distance`), the
evaluator's side in :mod:`eval.tasks.extract.task`. Score definitions: ``README.md`` here.
"""

from eval.tasks.extract.answers import (
    default_prompt,
    describe_fields,
    read_prompt_file,
    render_prompt,
    target_json,
)
from eval.tasks.extract.reader import ExtractRecord, load_extract, parse_extract_row
from eval.tasks.extract.schema import (
    COMPARE_KEY,
    COMPARE_KINDS,
    ExtractSchema,
    SchemaFileError,
    load_schema,
    schema_from_dict,
)

__all__ = [
    "COMPARE_KEY",
    "COMPARE_KINDS",
    "ExtractRecord",
    "ExtractSchema",
    "SchemaFileError",
    "default_prompt",
    "describe_fields",
    "load_extract",
    "load_schema",
    "parse_extract_row",
    "read_prompt_file",
    "render_prompt",
    "schema_from_dict",
    "target_json",
]
