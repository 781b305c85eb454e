"""The task-agnostic evaluation loop: concurrent requests, retries, a lossless results log.

A task plugs in through :class:`~eval.core.task.Task` (how a dataset row is asked, how an
answer is scored, how scores aggregate). :func:`send_rows` sends every selected row that has no
final result yet, with ``max_workers`` requests in flight, and appends each result to a JSONL
file as soon as it arrives; :func:`summarize` turns the log into the report's numbers.

Result records (one JSON object per line of ``predictions.jsonl``)::

    {"id": 7,                      # row index in the split
     "status": "ok",               # ok | request_failed | http_error | input_error
     "error": null,                # message for the three failure statuses
     "http_status": null,          # HTTP status of an http_error (or of the last failed attempt)
     "attempts": 1, "latency_s": 0.83, "elapsed_s": 0.83,
     "finish_reason": "stop", "usage": {...}, "content": "...",
     "score": {...}}               # Task.score(); null for input errors

* ``request_failed``: no answer after ``1 + retries`` attempts (connection errors, timeouts,
  429, 5xx, malformed bodies), with exponential back-off and jitter between attempts
  (``Retry-After`` honoured). Scored (the task decides how; W-2 counts every field wrong), and
  retried by ``--resume``.
* ``http_error``: a definitive HTTP error such as 400, with the server's message. Scored, final.
* ``input_error``: the dataset row cannot be used (image does not decode, ground truth is not
  JSON). Counted, not scored, final.

Resuming reads the log, keeps the last record of each id, and sends only the ids without a
final record (``ok``, ``http_error`` or ``input_error``). Ctrl-C stops sending, keeps every
record already written and returns with ``interrupted=True``; worker threads are daemons, so
a request hanging on a dead server never blocks the exit.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Optional

from eval.core.client import ChatClient, HTTPError, TransientError, data_url
from eval.core.report import serving_stats
from eval.core.splits import InputError
from eval.core.task import Response, Split, Task, openai_user_content

__all__ = [
    "ProgressStats",
    "RetryPolicy",
    "ResultsLog",
    "RunOutcome",
    "FINAL_STATUSES",
    "send_with_retries",
    "send_rows",
    "summarize",
]

#: Statuses that ``--resume`` does not send again.
FINAL_STATUSES = frozenset({"ok", "http_error", "input_error"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter.

    The wait before attempt ``n + 1`` is uniform in ``[cap / 2, cap]`` with
    ``cap = min(max_delay, base_delay * 2 ** (n - 1))``, and at least the server's
    ``Retry-After`` (capped at ``max_delay``).

    Attributes:
        retries (int): extra attempts after the first.
        base_delay (float): seconds before the first retry (upper bound).
        max_delay (float): longest wait.
    """

    retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(
        self, attempt: int, retry_after: Optional[float] = None, rng: Optional[random.Random] = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Args:
            attempt (int): the attempt that just failed.
            retry_after (Optional[float]): the server's ``Retry-After``, if any.
            rng (Optional[random.Random]): randomness source.

        Returns:
            float: the wait.
        """
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = (rng or random).uniform(cap / 2, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


def send_with_retries(
    client: ChatClient,
    request: Mapping[str, Any],
    policy: RetryPolicy,
    stop: Optional[threading.Event] = None,
    rng: Optional[random.Random] = None,
) -> Response:
    """Send a request until it gets an answer, a definitive error, or runs out of attempts.

    Args:
        client (ChatClient): the client.
        request (Mapping[str, Any]): from :meth:`ChatClient.build_request`.
        policy (RetryPolicy): retry settings.
        stop (Optional[threading.Event]): when set, no further attempt is made.
        rng (Optional[random.Random]): jitter source.

    Returns:
        Response: never raises for server or network failures.
    """
    stop = stop or threading.Event()
    start = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            result = client.send(request)
        except HTTPError as exc:
            return Response(
                status="http_error",
                attempts=attempt,
                elapsed_s=time.perf_counter() - start,
                error=str(exc),
                http_status=exc.status,
            )
        except TransientError as exc:
            if (
                attempt > policy.retries
                or stop.is_set()
                or stop.wait(policy.delay(attempt, exc.retry_after, rng))
            ):
                return Response(
                    status="request_failed",
                    attempts=attempt,
                    elapsed_s=time.perf_counter() - start,
                    error=f"{exc} (after {attempt} attempt{'s' if attempt > 1 else ''})",
                    http_status=exc.status,
                )
            continue
        return Response(
            status="ok",
            content=result.content,
            finish_reason=result.finish_reason,
            usage=result.usage,
            latency_s=result.latency_s,
            attempts=attempt,
            elapsed_s=time.perf_counter() - start,
        )


class ResultsLog:
    """The append-only JSONL results file.

    Args:
        path (Path): the file (created on first append).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: Optional[IO[str]] = None
        self.skipped_lines = 0

    def read(self) -> dict[int, dict[str, Any]]:
        """Load the records, the last one of each id winning.

        Lines that are not complete UTF-8 JSON objects (a write cut short by a kill, a damaged
        file) are skipped and counted in :attr:`skipped_lines`; their ids are simply sent again
        on resume.

        Returns:
            dict[int, dict[str, Any]]: records by id.
        """
        records: dict[int, dict[str, Any]] = {}
        self.skipped_lines = 0
        if not self.path.exists():
            return records
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))  # UnicodeDecodeError is a ValueError
                    rid = int(rec["id"])
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
                    continue
                records[rid] = rec
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record and flush it to the OS.

        Args:
            record (Mapping[str, Any]): a JSON-serialisable record with an ``id``.
        """
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = (
                self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
            )
            self._fh = self.path.open("a", encoding="utf-8")
            if needs_newline:
                self._fh.write("\n")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class RunOutcome:
    """What :func:`send_rows` did.

    Attributes:
        sent (int): ids processed in this invocation (records written).
        skipped (int): ids already final in the log.
        interrupted (bool): True if Ctrl-C stopped the run.
        wall_s (float): duration of this invocation.
    """

    sent: int = 0
    skipped: int = 0
    interrupted: bool = False
    wall_s: float = 0.0


class ProgressStats:
    """What the progress line says about speed: where the time goes, as answers arrive.

    Per answered request: seconds per answer, decode speed (completion tokens per second of
    request time) and completion tokens per answer against the limit, and how many answers
    were cut at the limit. A slow run then shows whether the server decodes slowly or the
    answers are long (a model writing until ``max_tokens``).

    Args:
        max_tokens (Optional[int]): the completion token limit of the requests.
    """

    def __init__(self, max_tokens: Optional[int] = None) -> None:
        self.max_tokens = max_tokens
        self.answers = 0
        self.latency_s = 0.0
        self.tokens = 0
        self.token_time_s = 0.0
        self.with_usage = 0
        self.cut = 0

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one result record (only answered requests count).

        Args:
            record (Mapping[str, Any]): a result record of :func:`send_rows`.
        """
        if record.get("status") != "ok" or record.get("latency_s") is None:
            return
        latency = float(record["latency_s"])
        self.answers += 1
        self.latency_s += latency
        completion = (record.get("usage") or {}).get("completion_tokens")
        if isinstance(completion, int) and not isinstance(completion, bool):
            self.tokens += completion
            self.token_time_s += latency
            self.with_usage += 1
        self.cut += record.get("finish_reason") == "length"

    def describe(self) -> str:
        """The progress line's text, e.g. ``12.1 s/answer, 9.8 tok/s, 118 tok/answer of max 3941, 2 cut at max``.

        Returns:
            str: the text ("" before the first answer).
        """
        if not self.answers:
            return ""
        parts = [f"{self.latency_s / self.answers:.1f} s/answer"]
        if self.with_usage:
            rate = self.tokens / self.token_time_s if self.token_time_s > 0 else 0.0
            per_answer = f"{self.tokens / self.with_usage:.0f} tok/answer"
            if self.max_tokens:
                per_answer += f" of max {self.max_tokens}"
            parts += [f"{rate:.1f} tok/s", per_answer]
        if self.cut:
            parts.append(f"{self.cut} cut at max")
        return ", ".join(parts)


def _process(
    task: Task,
    client: ChatClient,
    row: Any,
    row_id: int,
    fmt: Optional[dict[str, Any]],
    policy: RetryPolicy,
    stop: threading.Event,
    rng: random.Random,
) -> dict[str, Any]:
    """Ask, send, score one row; returns its record."""
    try:
        sample = task.sample(row, row_id)
    except InputError as exc:
        return {**asdict(Response(status="input_error", error=str(exc))), "id": row_id, "score": None}
    content = openai_user_content(data_url(sample.image, sample.mime), sample.prompt)
    response = send_with_retries(client, client.build_request(content, fmt), policy, stop, rng)
    return {"id": row_id, **asdict(response), "score": task.score(sample, response)}


def send_rows(
    task: Task,
    split: Split,
    client: ChatClient,
    ids: Sequence[int],
    log: ResultsLog,
    *,
    structured: bool = False,
    max_workers: int = 10,
    policy: RetryPolicy = RetryPolicy(),
    progress: bool = True,
    stop: Optional[threading.Event] = None,
) -> RunOutcome:
    """Evaluate the selected rows that have no final record in ``log``.

    Args:
        task (Task): the task.
        split (Split): the dataset split.
        client (ChatClient): the client.
        ids (Sequence[int]): row ids to evaluate.
        log (ResultsLog): the results file (read for resuming, appended to).
        structured (bool): send the task's ``response_format``.
        max_workers (int): concurrent requests.
        policy (RetryPolicy): retry settings.
        progress (bool): show a progress bar on stderr; its line also says what is slow
            (:class:`ProgressStats`).
        stop (Optional[threading.Event]): set it to stop the run (Ctrl-C sets it too).

    Returns:
        RunOutcome: counts and whether the run was interrupted.

    Raises:
        ValueError: if ``structured`` is set and the task has no schema, or ``max_workers < 1``.
    """
    from tqdm import tqdm

    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    fmt = task.response_format() if structured else None
    if structured and fmt is None:
        raise ValueError(f"task {task.name!r} has no schema for structured output")
    stop = stop or threading.Event()
    started = time.perf_counter()
    done = {rid for rid, rec in log.read().items() if rec.get("status") in FINAL_STATUSES}
    todo = [i for i in ids if i not in done]
    outcome = RunOutcome(skipped=len(ids) - len(todo))
    if not todo:
        outcome.wall_s = time.perf_counter() - started
        return outcome

    tasks: queue.Queue[Optional[tuple[int, dict[str, Any]]]] = queue.Queue()
    results: queue.Queue[tuple[int, Any]] = queue.Queue()
    rng = random.Random()

    def worker() -> None:
        while True:
            item = tasks.get()
            if item is None or stop.is_set():
                return
            row_id, row = item
            try:
                results.put((row_id, _process(task, client, row, row_id, fmt, policy, stop, rng)))
            except BaseException as exc:  # a bug in a task: hand it to the main thread
                results.put((row_id, exc))

    n_threads = min(max_workers, len(todo))
    threads = [
        threading.Thread(target=worker, name=f"eval-worker-{k}", daemon=True) for k in range(n_threads)
    ]
    for t in threads:
        t.start()
    pending = iter(todo)
    in_flight = 0
    bar = tqdm(total=len(todo), desc=f"{task.name}", unit="req", disable=not progress, dynamic_ncols=True)
    speed = ProgressStats(client.max_tokens)
    try:
        while True:
            while in_flight < 2 * n_threads:
                row_id = next(pending, None)
                if row_id is None:
                    break
                tasks.put((row_id, split.row(row_id)))
                in_flight += 1
            if in_flight == 0:
                break
            try:
                row_id, record = results.get(timeout=0.5)
            except queue.Empty:
                continue
            in_flight -= 1
            if isinstance(record, BaseException):
                raise record
            log.append(record)
            outcome.sent += 1
            speed.add(record)
            bar.set_postfix_str(speed.describe(), refresh=False)
            bar.update()
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        stop.set()
        for _ in threads:
            tasks.put(None)
        bar.close()
        log.close()
    outcome.wall_s = time.perf_counter() - started
    return outcome


def _top_messages(records: Iterable[Mapping[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    """Distinct error messages with their counts and first ids, most frequent first."""
    groups: dict[tuple[Any, str], dict[str, Any]] = {}
    for rec in records:
        key = (rec.get("http_status"), str(rec.get("error")))
        g = groups.setdefault(key, {"http_status": key[0], "message": key[1], "count": 0, "ids": []})
        g["count"] += 1
        if len(g["ids"]) < 5:
            g["ids"].append(rec["id"])
    return sorted(groups.values(), key=lambda g: -g["count"])[:limit]


def summarize(task: Task, records: Mapping[int, Mapping[str, Any]], ids: Sequence[int]) -> dict[str, Any]:
    """Counts, failures by kind, serving statistics and the task's metrics for the selected ids.

    Args:
        task (Task): the task (its :meth:`~eval.core.task.Task.aggregate` gives the metrics).
        records (Mapping[int, Mapping[str, Any]]): the log's records by id.
        ids (Sequence[int]): the selected ids.

    Returns:
        dict[str, Any]: ``counts``, ``failures``, ``http_errors``, ``input_errors``, ``serving``,
        ``metrics`` and ``complete`` (every selected id has a final record).
    """
    selected = [records[i] for i in ids if i in records]
    by_status: dict[str, list[Mapping[str, Any]]] = {}
    for rec in selected:
        by_status.setdefault(str(rec.get("status")), []).append(rec)
    scored = [rec for rec in selected if rec.get("status") != "input_error" and rec.get("score") is not None]
    scores = [rec["score"] for rec in scored]
    missing = len(ids) - len(selected)
    counts = {
        "selected": len(ids),
        "recorded": len(selected),
        "missing": missing,
        "scored": len(scored),
        "ok": len(by_status.get("ok", [])),
        "request_failed": len(by_status.get("request_failed", [])),
        "http_error": len(by_status.get("http_error", [])),
        "input_error": len(by_status.get("input_error", [])),
    }
    failures = {
        "request_failed": counts["request_failed"],
        "http_error": counts["http_error"],
        "truncated": sum(1 for s in scores if s.get("failure") == "truncated"),
        "invalid_json": sum(1 for s in scores if s.get("failure") == "invalid_json"),
        "schema_violation": sum(1 for s in scores if s.get("parsed") and s.get("schema_valid") is False),
        "input_error": counts["input_error"],
    }
    complete = missing == 0 and counts["request_failed"] == 0
    return {
        "complete": complete,
        "counts": counts,
        "failures": failures,
        "http_errors": _top_messages(by_status.get("http_error", [])),
        "request_errors": _top_messages(by_status.get("request_failed", [])),
        "input_errors": _top_messages(by_status.get("input_error", [])),
        "serving": serving_stats(selected),
        "metrics": task.aggregate(scores),
    }
