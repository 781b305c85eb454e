"""``python -m torchtune_ext.data.documents.label``: a teacher model labels the unlabelled pages.

Usage::

    python -m torchtune_ext.data.documents.label --pages PAGES --schema invoice.schema.json \\
        --rules rules.json --server_url http://127.0.0.1:8001/v1 --model teacher

Every page of ``PAGES`` without a label (and not already in ``labels.jsonl``, ``review.jsonl``,
``reviewed.jsonl`` or ``dropped.jsonl``) is sent with the extract task's prompt (generated from
the schema, or ``--prompt_file``: a teacher may get a longer prompt than the one the student
trains on) and the schema as ``response_format`` (json_schema, strict), through the evaluators'
client and runner: ``--max_workers`` requests in flight, retries with back-off for connection
errors, timeouts, 429 and 5xx, and every answer appended to ``PAGES/teacher/predictions.jsonl``
as it arrives. Each answer is checked against the schema (``format: date`` included) and the
rules file (:mod:`torchtune_ext.data.documents.rules`):

* accepted answers are appended to ``PAGES/labels.jsonl`` (``"labelled_by": "teacher:<model>"``);
* the rest go to ``PAGES/review.jsonl`` with the teacher's answer as ``target`` (null when there
  was none), a one-line ``reason`` (``schema: ...``, ``rules: ...``, ``no JSON object``,
  ``truncated``, ``HTTP 400: <the server's message>``, an unreadable image) and, when the reply
  was not JSON, the ``reply``. Fix them and run ``merge_review``.

Running the same command again continues: pages with an answer in the log are not sent again
(requests that failed after all retries are), so an interrupted run loses nothing. A run with
another model, schema, prompt, rules or sampling setting is refused until ``--overwrite``, which
starts the teacher over (``teacher/``, ``labels.jsonl`` and ``review.jsonl`` are replaced; what
``merge_review`` accepted or dropped is kept).

Documents are often confidential: pages are only sent to a server on this machine
(``localhost``, ``127.0.0.0/8``, ``::1``) unless ``--allow_remote`` confirms that the endpoint may
see them; the command then names the endpoint and the number of pages before sending.

Exit status: 0 when every page has an answer, 1 when requests failed or got an HTTP error (the
message names the first), 2 for bad input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from eval.core.records import DatasetRowError
from eval.core.replies import extract_json_object
from eval.core.report import timestamp, write_json
from eval.core.splits import RecordSplit, record_image
from eval.core.task import Response, Sample, Task
from eval.tasks.extract import ExtractRecord, load_extract
from eval.tasks.extract.schema import ExtractSchema, SchemaFileError
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.data.documents.pages import (
    DROPPED_FILE,
    LABELS_FILE,
    REVIEW_FILE,
    REVIEWED_FILE,
    TEACHER_DIR,
    append_jsonl,
    read_rows,
    record_row,
)
from torchtune_ext.data.documents.rules import Rules, RulesFileError, load_rules

__all__ = ["TeacherTask", "check_label", "is_local_url", "main"]

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
#: Longest reply text kept in a review row.
MAX_REPLY_CHARS = 4000


def is_local_url(url: str) -> bool:
    """Whether a server URL points at this machine (``localhost`` or a loopback address).

    Host names are not resolved: any name but ``localhost`` counts as another machine.

    Args:
        url (str): e.g. ``http://127.0.0.1:8001/v1``.

    Returns:
        bool: True for ``localhost``, ``127.0.0.0/8`` and ``::1``.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_label(schema: ExtractSchema, rules: Optional[Rules], label: Any) -> Optional[str]:
    """Why a label is not acceptable: schema errors first, then broken rules (None when it is).

    Args:
        schema (ExtractSchema): the schema.
        rules (Optional[Rules]): the rules, if any.
        label (Any): a decoded label.

    Returns:
        Optional[str]: ``schema: ...`` or ``rules: ...`` (one line), or None.
    """
    errors = schema.errors(label)
    if errors:
        return "schema: " + "; ".join(errors)
    broken = rules.errors(label) if rules is not None else []
    if broken:
        more = f" (+{len(broken) - 5} more)" if len(broken) > 5 else ""
        return "rules: " + "; ".join(broken[:5]) + more
    return None


class TeacherTask(Task):
    """The extract task as a teacher is asked it: pages without targets, answers checked, not scored.

    Args:
        extract (ExtractTask): the task (prompt, schema, ``response_format``).
        rules (Optional[Rules]): rules every label must satisfy.
    """

    name = "extract"
    description = "Label document pages with a teacher model."
    dataset_help = "a pages directory"
    headline_metric = "accepted"

    def __init__(self, extract: ExtractTask, rules: Optional[Rules] = None) -> None:
        self.extract = extract
        self.rules = rules

    def load(self, path: str | Path) -> RecordSplit:
        """Every page of a pages directory, labelled or not.

        Raises:
            DatasetRowError: on a bad row (names file and line).
        """
        return RecordSplit(load_extract(path, None, require_target=False))

    def sample(self, row: ExtractRecord, index: int) -> Sample:
        """The page image, the prompt and ``{"page_id"}``."""
        data, mime = record_image(row, index)
        return Sample(id=index, image=data, mime=mime, prompt=self.extract.prompt, target={"page_id": row.id})

    def answer(self, target: Mapping[str, Any]) -> str:
        """The extract task's answer text."""
        return self.extract.answer(target)

    def instruction(self) -> str:
        """The prompt the teacher is sent."""
        return self.extract.prompt

    def json_schema(self) -> dict[str, Any]:
        """The schema sent as ``response_format``."""
        return self.extract.json_schema()

    def response_format(self) -> Optional[dict[str, Any]]:
        """The extract task's ``response_format``."""
        return self.extract.response_format()

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Check the answer: ``page_id``, ``accepted``, ``reason``, ``label`` (and ``reply`` when not JSON)."""
        verdict: dict[str, Any] = {"page_id": sample.target["page_id"], "accepted": False, "label": None}
        if not response.answered:
            status = f"HTTP {response.http_status}: " if response.http_status else ""
            return {**verdict, "reason": f"{status}{response.error}", "parsed": False, "failure": None}
        parsed = extract_json_object(response.content)
        if not parsed.ok:
            truncated = response.finish_reason == "length"
            reason = (
                "truncated at --max_tokens" if truncated else f"no JSON object in the reply ({parsed.error})"
            )
            reply = (response.content or "")[:MAX_REPLY_CHARS]
            failure = "truncated" if truncated else "invalid_json"
            return {**verdict, "reason": reason, "reply": reply, "parsed": False, "failure": failure}
        reason = check_label(self.extract.schema, self.rules, parsed.value)
        schema_valid = reason is None or reason.startswith("rules:")
        return {
            **verdict,
            "accepted": reason is None,
            "reason": reason,
            "label": parsed.value,
            "parsed": True,
            "failure": None,
            "schema_valid": schema_valid,
        }

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Pages answered, accepted and sent to review."""
        accepted = sum(bool(s.get("accepted")) for s in scores)
        return {"pages": len(scores), "accepted": accepted, "review": len(scores) - accepted}

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Accepted and review counts."""
        return [("accepted", str(metrics["accepted"])), ("to review", str(metrics["review"]))]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.documents.label",
        description="Label the unlabelled pages of a pages directory with a teacher model behind an "
        "OpenAI-compatible API; answers are checked against the schema and rules.",
    )
    p.add_argument("--pages", type=Path, required=True, help="the pages directory (ingest's output)")
    p.add_argument("--schema", type=Path, required=True, help="the JSON Schema file of a label")
    p.add_argument("--rules", type=Path, default=None, help="rules file: more checks per path (see README)")
    p.add_argument(
        "--prompt_file", "--prompt-file", type=Path, default=None, help="the teacher's prompt file"
    )
    p.add_argument(
        "--server_url", "--server-url", default="http://127.0.0.1:8001/v1", help="OpenAI base URL, /v1"
    )
    p.add_argument("--model", required=True, help="served model name of the teacher")
    p.add_argument(
        "--allow_remote",
        "--allow-remote",
        action="store_true",
        help="confirm that the pages may be sent to a server that is not this machine",
    )
    p.add_argument("--api-key-env", "--api_key_env", dest="api_key_env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key")  # fmt: skip
    p.add_argument("--bounded_schema", "--bounded-schema", action="store_true",
                   help="send the schema with every string and number bounded (eval.core.schema_bounds)")  # fmt: skip
    p.add_argument("--max_string_chars", "--max-string-chars", type=int, default=64,
                   help="longest string --bounded_schema allows (default: 64)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request attempt (default: 300)")
    p.add_argument(
        "--max_workers", "--max-workers", type=int, default=4, help="concurrent requests (default: 4)"
    )
    p.add_argument(
        "--retries", type=int, default=5, help="extra attempts after transient errors (default: 5)"
    )
    p.add_argument("--retry_base_delay", "--retry-base-delay", type=float, default=1.0,
                   help="first back-off in seconds, doubling (default: 1)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (negative: none; default: 42)")
    p.add_argument("--max_tokens", "--max-tokens", type=int, default=4096, help="completion token limit")
    p.add_argument("--limit", type=int, default=-1, help="label at most N pages in this run (-1: all)")
    p.add_argument("--overwrite", action="store_true", help="start the teacher over (see above)")
    p.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    return p


class _InputError(Exception):
    """Bad input: printed as ``error: ...``, exit status 2."""


def _identity(args: argparse.Namespace, task: TeacherTask) -> dict[str, Any]:
    return {
        "model": args.model,
        "schema_sha256": task.extract.schema.sha256,
        "prompt": task.extract.prompt,
        "rules_sha256": task.rules.sha256 if task.rules is not None else None,
        "bounded_schema": args.max_string_chars if args.bounded_schema else None,
        "temperature": args.temperature,
        "seed": args.seed if args.seed >= 0 else None,
        "max_tokens": args.max_tokens,
    }


def _claim_teacher_dir(pages: Path, identity: Mapping[str, Any], overwrite: bool) -> None:
    teacher = pages / TEACHER_DIR
    if overwrite:
        shutil.rmtree(teacher, ignore_errors=True)
        for name in (LABELS_FILE, REVIEW_FILE):
            (pages / name).unlink(missing_ok=True)
    run_file = teacher / RUN_FILE
    if run_file.is_file():
        try:
            before = json.loads(run_file.read_text(encoding="utf-8")).get("identity", {})
        except (ValueError, AttributeError) as exc:
            raise _InputError(
                f"{run_file}: not the teacher's run file ({exc}); pass --overwrite to start over"
            ) from exc
        diff = [k for k in identity if before.get(k) != identity[k]]
        if diff:
            raise _InputError(
                f"{teacher} holds a teacher run with another {', '.join(diff)}; rerun with the same settings "
                "to continue it, or pass --overwrite to start over"
            )
    write_json(run_file, {"identity": dict(identity), "updated": timestamp()})


def _send(args: argparse.Namespace, task: TeacherTask, split: RecordSplit, todo: list[int], log: Any) -> Any:
    from eval.core.cli import CLIError, preflight
    from eval.core.client import ChatClient, api_key_from_env
    from eval.core.runner import FINAL_STATUSES, RetryPolicy, send_rows

    asked: Task = task
    if args.bounded_schema:
        from eval.core.schema_bounds import BoundedSchemaTask

        asked = BoundedSchemaTask(task, max_string_chars=args.max_string_chars)  # type: ignore[assignment]
    done = {i for i, r in log.read().items() if r.get("status") in FINAL_STATUSES}
    if any(i not in done for i in todo):
        try:
            preflight(args.server_url, min(10.0, args.timeout))
        except CLIError as exc:
            raise _InputError(str(exc)) from exc
    client = ChatClient(
        args.server_url,
        args.model,
        api_key=api_key_from_env(args.api_key_env),
        timeout=args.timeout,
        temperature=args.temperature,
        seed=args.seed if args.seed >= 0 else None,
        max_tokens=args.max_tokens,
    )
    try:
        return send_rows(
            asked,  # type: ignore[arg-type]
            split,
            client,
            todo,
            log,
            structured=True,
            max_workers=args.max_workers,
            policy=RetryPolicy(retries=args.retries, base_delay=args.retry_base_delay),
            progress=not args.no_progress,
        )
    finally:
        client.close()


def _write_outputs(
    pages: Path, split: RecordSplit, todo: list[int], records: Mapping[int, Mapping[str, Any]], model: str
) -> dict[str, int]:
    """Append the verdicts of the pages in ``todo`` that have a final answer; returns counts."""
    labels, review = [], []
    counts = {"accepted": 0, "review": 0, "failed": 0, "http_error": 0}
    first_http: Optional[str] = None
    first_failure: Optional[str] = None
    for i in todo:
        rec = records.get(i)
        page: ExtractRecord = split.row(i)
        if rec is None or rec.get("status") == "request_failed":
            counts["failed"] += rec is not None
            first_failure = first_failure or (rec or {}).get("error")
            continue
        score = rec.get("score") or {}
        if rec.get("status") == "http_error":
            counts["http_error"] += 1
            first_http = first_http or score.get("reason")
        if score.get("accepted"):
            labels.append({**record_row(page, pages, score["label"]), "labelled_by": f"teacher:{model}"})
            counts["accepted"] += 1
            continue
        row = record_row(page, pages)
        row["target"] = score.get("label")
        row["reason"] = score.get("reason") or rec.get("error") or "no answer"
        if score.get("reply") is not None:
            row["reply"] = score["reply"]
        review.append(row)
        counts["review"] += 1
    append_jsonl(pages / LABELS_FILE, labels)
    append_jsonl(pages / REVIEW_FILE, review)
    if first_http:
        print(
            f"error: {counts['http_error']} request(s) got an HTTP error; first: {first_http}",
            file=sys.stderr,
        )
    if first_failure:
        print(
            f"{counts['failed']} request(s) failed after retries (first: {first_failure}); "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Label pages from the command line (what it does: the module docstring).

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 all answered, 1 failed requests or HTTP errors, 2 bad input, 130 interrupted.
    """
    from eval.core.runner import ResultsLog

    args = _parser().parse_args(argv)
    try:
        if args.max_workers < 1 or args.retries < 0 or args.timeout <= 0 or args.max_tokens < 1:
            raise _InputError("--max_workers and --max_tokens must be >= 1, --retries >= 0, --timeout > 0")
        if not args.server_url.startswith(("http://", "https://")):
            raise _InputError(f"--server_url must start with http:// or https://, got {args.server_url!r}")
        extract = ExtractTask(args.schema, args.prompt_file)
        rules = load_rules(args.rules, extract.schema) if args.rules is not None else None
        task = TeacherTask(extract, rules)
        pages: Path = args.pages
        split = task.load(pages)
        handled = {
            str(row.get("id"))
            for name in (LABELS_FILE, REVIEW_FILE, REVIEWED_FILE, DROPPED_FILE)
            for _, row in read_rows(pages / name)
        }
        if args.overwrite:
            handled = {
                str(row.get("id")) for n in (REVIEWED_FILE, DROPPED_FILE) for _, row in read_rows(pages / n)
            }
        todo = [
            i for i in range(len(split)) if split.row(i).target is None and split.row(i).id not in handled
        ]
        if args.limit > 0:
            todo = todo[: args.limit]
        if todo and not is_local_url(args.server_url):
            where = urlsplit(args.server_url).hostname
            if not args.allow_remote:
                raise _InputError(
                    f"refusing to send {len(todo)} page images to {where}, which is not this machine: documents "
                    "are often confidential; pass --allow_remote if this endpoint may see them"
                )
            print(
                f"warning: sending {len(todo)} page images of {pages} to {args.server_url}", file=sys.stderr
            )
        _claim_teacher_dir(pages, _identity(args, task), args.overwrite)
        log = ResultsLog(pages / TEACHER_DIR / PREDICTIONS)
        for i, rec in log.read().items():
            logged = (rec.get("score") or {}).get("page_id")
            if logged is not None and (i >= len(split) or split.row(i).id != logged):
                raise _InputError(
                    f"{log.path}: row {i} was page {logged}, {pages}/data.jsonl has changed since; "
                    "pass --overwrite to start the teacher over"
                )
        outcome = _send(args, task, split, todo, log)
    except (_InputError, SchemaFileError, RulesFileError, DatasetRowError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = _write_outputs(pages, split, todo, log.read(), args.model)
    print(
        f"teacher {args.model}: {counts['accepted']} labels accepted ({pages / LABELS_FILE}), "
        f"{counts['review']} to review ({pages / REVIEW_FILE}), {counts['failed']} failed requests; "
        f"{outcome.sent} sent, {outcome.skipped} answered before, in {outcome.wall_s:.1f} s"
    )
    if outcome.interrupted:
        print("interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    return 1 if counts["failed"] or counts["http_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
