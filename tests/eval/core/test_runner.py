"""Runner pieces: back-off bounds, the JSONL log (last record wins, torn lines survive), the protocol."""

import json
import random
from pathlib import Path

import pytest

from eval.core.runner import FINAL_STATUSES, ResultsLog, RetryPolicy, send_rows
from eval.core.task import Task
from eval.tasks.w2.task import W2Task


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(retries=5, base_delay=1.0, max_delay=30.0)
    rng = random.Random(0)
    for attempt, (lo, hi) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 10: (15.0, 30.0)}.items():
        waits = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert lo <= min(waits) and max(waits) <= hi
        assert max(waits) - min(waits) > (hi - lo) / 2  # jittered, not constant
    assert policy.delay(1, retry_after=10.0, rng=rng) >= 10.0  # Retry-After honoured
    assert policy.delay(1, retry_after=100.0, rng=rng) == 30.0  # ... up to max_delay


def test_log_keeps_last_record_per_id_and_skips_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text(
        json.dumps({"id": 0, "status": "request_failed"})
        + "\n"
        + '{"id": 1, "status": "o\n'  # a write cut short by a kill, in the middle
        + json.dumps({"id": 0, "status": "ok"})
        + "\n"
        + "\n"
        + '{"id": 2, "sta'  # torn last line, no newline
    )
    log = ResultsLog(path)
    records = log.read()
    assert records == {0: {"id": 0, "status": "ok"}}
    assert log.skipped_lines == 2
    log.append({"id": 2, "status": "ok"})  # starts on a fresh line after the torn one
    log.close()
    assert path.read_text().endswith('{"id": 2, "sta\n{"id": 2, "status": "ok"}\n')
    assert set(ResultsLog(path).read()) == {0, 2}


def test_log_skips_a_line_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b'{"id": 0, "status": "ok"}\n{"id": 1, "status": "\xff"}\n{"id": 2, "status": "ok"}\n')
    log = ResultsLog(path)
    assert set(log.read()) == {0, 2} and log.skipped_lines == 1  # row 1 is sent again on resume


def test_final_statuses() -> None:
    assert FINAL_STATUSES == {"ok", "http_error", "input_error"}  # request_failed is retried on resume


def test_w2_task_is_a_task() -> None:
    assert isinstance(W2Task(), Task)


def test_run_refuses_structured_without_schema_and_zero_workers(tmp_path: Path) -> None:
    class NoSchema(W2Task):
        def response_format(self):
            return None

    with pytest.raises(ValueError, match="has no schema"):
        send_rows(NoSchema(), None, None, [0], ResultsLog(tmp_path / "p.jsonl"), structured=True)
    with pytest.raises(ValueError, match="max_workers must be >= 1"):
        send_rows(W2Task(), None, None, [0], ResultsLog(tmp_path / "p.jsonl"), max_workers=0)
