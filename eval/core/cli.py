"""The one command line and run path of every task evaluator (``python -m eval <task>``).

:func:`main` looks the task up in the registry (:mod:`eval.tasks`), builds the parser
(:func:`build_parser`: the shared flags plus the task's own), and :func:`run` evaluates:
read the split, send the rows (:mod:`eval.core.runner`), write the report
(:mod:`eval.core.report`) and the task's extra files. ``python -m eval.w2`` and the other
per-task modules are this with the task name fixed.

Flag names are those of the llama-cookbook ``evaluate.py`` (``--server_url``, ``--model``,
``--structured``, ``--limit``, ``--max_workers``, ``--timeout``, ``--output_dir``); each also
has a dashed alias (``--server-url``).

Files in ``--output_dir``: ``predictions.jsonl`` (one record per row, appended as results
arrive), ``run.json`` (what the run is, checked by ``--resume``), ``report.json``, the chart
(``Task.chart_file``) and the task's extra files (``Task.write_extras``).

``--output_dir`` is locked while a run writes to it (an OS lock on ``.eval.lock``, released
when the process ends, however it ends): a second evaluator on the same directory stops with
one line instead of sending the rows again. Credentials in ``--server_url``
(``http://user:secret@host/v1``) are used, and masked in everything printed or written
(:mod:`eval.core.redact`).

Exit status: 0 when every selected row has a final result and no request failed; 1 when some
requests failed (after retries) or got an HTTP error; 2 for bad arguments or input
(``error: ...``); 130 when interrupted (rerun the same command with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from eval.core.dir_lock import DirectoryLock, LockHeld
from eval.core.redact import redact_text, redact_url, strip_userinfo, url_secrets
from eval.core.splits import DatasetError
from eval.core.task import Task, answer_token_budget

__all__ = ["CLIError", "HelpFormatter", "RESUME_KEYS", "build_parser", "entry", "main", "preflight", "run"]

#: Run properties that must match for ``--resume`` to continue a run.
RESUME_KEYS = (
    "task",
    "task_options",
    "model",
    "structured",
    "bounded_schema",
    "dataset_sha256",
    "temperature",
    "seed",
    "max_tokens",
    "server_quantization",
)

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
REPORT = "report.json"
#: The lock file: held (an OS lock) by the one evaluator writing to the directory.
LOCK_FILE = ".eval.lock"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only when it says something (not None/False, not already in the help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action) or text


class CLIError(Exception):
    """A user-facing error: printed as ``error: <message>``, exit status 2."""


def build_parser(task_cls: type[Task]) -> argparse.ArgumentParser:
    """The shared flags, then the task's own (:meth:`~eval.core.task.Task.add_arguments`).

    Args:
        task_cls (type[Task]): the task (its name sets the program name and default output
            directory; its ``description`` and ``dataset_help`` the help texts).

    Returns:
        argparse.ArgumentParser: the parser.
    """
    task = task_cls.name
    p = argparse.ArgumentParser(
        prog=f"python -m eval.{task}",
        description=task_cls.description,
        formatter_class=HelpFormatter,
    )
    srv = p.add_argument_group("server")
    srv.add_argument(
        "--server_url",
        "--server-url",
        default="http://127.0.0.1:8001/v1",
        help="OpenAI-compatible base URL, ending in /v1",
    )
    srv.add_argument("--model", required=True, help="served model name (as the server lists it)")
    srv.add_argument(
        "--structured",
        action="store_true",
        help="send the task's JSON schema as response_format (json_schema, strict)",
    )
    srv.add_argument(
        "--bounded_schema",
        "--bounded-schema",
        action="store_true",
        help="with --structured: send a variant of the schema with every string limited to "
        "--max_string_chars characters and every number to +-1e9, so that a model cannot spend "
        "max_tokens inside one value (see eval.core.schema_bounds); replies are still scored against "
        "the task's own schema. Default: the task's schema, unchanged",
    )
    srv.add_argument(
        "--max_string_chars",
        "--max-string-chars",
        type=int,
        default=64,
        help="longest string value allowed by --bounded_schema",
    )
    srv.add_argument(
        "--api-key-env",
        "--api_key_env",
        dest="api_key_env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (unset: a placeholder is sent)",
    )
    srv.add_argument(
        "--server_quantization",
        "--server-quantization",
        default=None,
        help="how the server's weights are quantized (e.g. fp8, bitsandbytes, compressed-tensors); "
        "recorded in run.json and report.json (python -m eval.serve passes it)",
    )
    srv.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per request attempt")
    srv.add_argument(
        "--wait_for_server",
        "--wait-for-server",
        type=float,
        default=0.0,
        help="seconds to wait for a server that is still starting before giving up (0: fail at once)",
    )
    srv.add_argument("--max_workers", "--max-workers", type=int, default=10, help="concurrent requests")
    srv.add_argument(
        "--retries", type=int, default=5, help="extra attempts after connection errors, timeouts, 429 and 5xx"
    )
    srv.add_argument(
        "--retry_base_delay",
        "--retry-base-delay",
        type=float,
        default=1.0,
        help="back-off before the first retry in seconds (doubles each retry, jittered, max 30)",
    )
    smp = p.add_argument_group("sampling")
    smp.add_argument("--temperature", type=float, default=0.0, help="sampling temperature")
    smp.add_argument("--seed", type=int, default=42, help="sampling seed sent to the server (negative: none)")
    smp.add_argument(
        "--max_tokens",
        "--max-tokens",
        type=int,
        default=None,
        help="completion token limit (default: from the task: its longest valid answer, counted as "
        "one token per character, x1.25 + 64; strings of --max_string_chars characters, numbers "
        "within +-1e9, at most 64 list items; e.g. W-2 3941, classification about 100; 8192 for a "
        "task without a bound; with --resume: the resumed run's)",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        "--dataset_name",
        "--dataset-name",
        dest="dataset",
        required=True,
        help=task_cls.dataset_help,
    )
    data.add_argument("--limit", type=int, default=-1, help="evaluate the first N rows (-1: all)")
    out = p.add_argument_group("output")
    out.add_argument(
        "--output_dir",
        "--output-dir",
        default=f"./{task}_evaluation_results",
        help="directory for predictions.jsonl, report.json and the chart",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output_dir: send only rows without a final result",
    )
    out.add_argument("--overwrite", action="store_true", help="discard an earlier run in --output_dir")
    out.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--wandb", action="store_true", help="also log the metrics to Weights & Biases")
    out.add_argument("--wandb_project", "--wandb-project", default="torchtune-ext-eval", help="W&B project")
    out.add_argument("--wandb_run_name", "--wandb-run-name", default=None, help="W&B run name")
    task_cls.add_arguments(p)
    return p


def _check_args(args: argparse.Namespace) -> None:
    if not args.server_url.startswith(("http://", "https://")):
        raise CLIError(f"--server_url must start with http:// or https://, got {args.server_url!r}")
    if not args.server_url.rstrip("/").endswith("/v1"):
        shown = redact_url(args.server_url.rstrip("/"))
        print(
            f"warning: --server_url {shown} does not end in /v1; requests go to {shown}/chat/completions",
            file=sys.stderr,
        )
    if args.max_workers < 1:
        raise CLIError(f"--max_workers must be >= 1, got {args.max_workers}")
    if args.retries < 0:
        raise CLIError(f"--retries must be >= 0, got {args.retries}")
    if args.timeout <= 0:
        raise CLIError(f"--timeout must be > 0, got {args.timeout}")
    if args.wait_for_server < 0:
        raise CLIError(f"--wait_for_server must be >= 0, got {args.wait_for_server}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise CLIError(f"--max_tokens must be >= 1, got {args.max_tokens}")
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other")
    if args.bounded_schema and not args.structured:
        raise CLIError("--bounded_schema only changes the schema --structured sends; add --structured")
    if args.max_string_chars < 1:
        raise CLIError(f"--max_string_chars must be >= 1, got {args.max_string_chars}")


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise CLIError(
            "--wandb needs the wandb package: pip install wandb (or torchtune-ext[wandb])"
        ) from exc
    return wandb


def _prepare_output(
    out: Path, identity: Mapping[str, Any], args: argparse.Namespace, chart_name: str
) -> None:
    """Check/claim the output directory for this run (resume, overwrite or fresh)."""
    from eval.core.report import timestamp, write_json
    from eval.core.runner import ResultsLog

    log_path = out / PREDICTIONS
    has_results = log_path.exists() and log_path.stat().st_size > 0
    if args.overwrite:
        for name in (PREDICTIONS, RUN_FILE, REPORT, chart_name):
            (out / name).unlink(missing_ok=True)
    elif args.resume:
        run_file = out / RUN_FILE
        if run_file.exists():
            try:
                before = json.loads(run_file.read_text())
            except ValueError as exc:
                raise CLIError(
                    f"{run_file}: not valid JSON ({exc}); cannot check what run to resume"
                ) from exc
            diff = [k for k in RESUME_KEYS if before.get("identity", {}).get(k) != identity.get(k)]
            if diff:
                shown = ", ".join(
                    f"{k}: {before.get('identity', {}).get(k)!r} -> {identity.get(k)!r}" for k in diff
                )
                raise CLIError(
                    f"--resume: {out} holds a different run ({shown}); use another --output_dir "
                    "or --overwrite"
                )
        elif has_results:
            raise CLIError(
                f"--resume: {log_path} has results but {run_file} is missing; cannot check the run"
            )
    elif has_results:
        n = len(ResultsLog(log_path).read())
        raise CLIError(
            f"{log_path} already holds {n} result(s); pass --resume to finish that run "
            "or --overwrite to start over"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, {"identity": dict(identity), "updated": timestamp()})


def _recorded_max_tokens(args: argparse.Namespace) -> Optional[int]:
    """With ``--resume`` and no ``--max_tokens``: the limit the run being resumed recorded."""
    run_file = Path(args.output_dir) / RUN_FILE
    if not args.resume or not run_file.is_file():
        return None
    try:
        recorded = json.loads(run_file.read_text()).get("identity", {}).get("max_tokens")
    except (ValueError, OSError, AttributeError):
        return None  # _prepare_output names the broken file
    return recorded if isinstance(recorded, int) and recorded > 0 else None


def preflight(base_url: str, timeout: float, wait: float = 0.0) -> None:
    """Fail fast when nothing listens at the server URL (any HTTP answer is fine).

    Args:
        base_url (str): the OpenAI base URL (``.../v1``); ``/models`` is asked. Credentials in
            it are sent as basic auth and never shown.
        timeout (float): seconds to wait for one answer.
        wait (float): keep trying this many seconds first (a server still starting).

    Raises:
        CLIError: if the server cannot be reached (names the redacted URL and the reason).
    """
    import base64

    url, credentials = strip_userinfo(base_url.rstrip("/") + "/models")
    request = urllib.request.Request(url)
    if credentials is not None:  # urllib does not take them in the URL; the openai client does
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a malformed URL
            if time.monotonic() < deadline and not isinstance(exc, ValueError):
                time.sleep(1.0)
                continue
            reason = getattr(exc, "reason", exc)
            waited = (
                f" (waited {wait:g} s)" if wait > 0 else " (--wait_for_server S waits for a starting server)"
            )
            raise CLIError(f"cannot reach the server at {redact_url(base_url)}: {reason}{waited}") from exc


def _output_dir(path: str) -> Path:
    """Create ``--output_dir`` if needed; one line if it cannot be a directory."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--output_dir {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file" if blocker is not None else exc.strerror or str(exc)
        raise CLIError(f"--output_dir {out}: cannot create it ({why})") from None
    return out


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold the output directory's lock for the run; a second evaluator on it gets one line."""
    try:
        lock = DirectoryLock(out, LOCK_FILE).acquire()
    except LockHeld as exc:
        owner = f"pid {exc.pid}" if exc.pid else "another process"
        raise CLIError(
            f"{out} is in use by another evaluator ({owner}); wait for it to finish, or use another --output_dir"
        ) from None
    except OSError as exc:
        raise CLIError(f"--output_dir {out}: cannot create {LOCK_FILE} ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def run(args: argparse.Namespace, task: Task) -> int:
    """Evaluate ``task`` as the parsed flags say (everything after argument parsing).

    Args:
        args (argparse.Namespace): from :func:`build_parser`.
        task (Task): the task, built from the same flags.

    Returns:
        int: the exit status (see the module docstring).

    Raises:
        CLIError: for bad arguments, an unusable dataset or output directory (a file, or in use
            by another evaluator: the directory is locked for the run), an unreachable server.
    """
    _check_args(args)
    wandb = _import_wandb() if args.wandb else None
    try:
        split = task.load(args.dataset)
    except DatasetError as exc:
        raise CLIError(str(exc)) from exc
    if args.bounded_schema:
        from eval.core.schema_bounds import BoundedSchemaTask

        task = BoundedSchemaTask(task, max_string_chars=args.max_string_chars)
    if args.max_tokens is None:
        args.max_tokens = _recorded_max_tokens(args) or answer_token_budget(task, args.max_string_chars)
    n = len(split) if args.limit <= 0 else min(args.limit, len(split))
    ids = list(range(n))
    identity = {
        "task": task.name,
        "task_options": task.options(),
        "model": args.model,
        "structured": args.structured,
        "bounded_schema": args.max_string_chars if args.bounded_schema else None,
        "dataset_sha256": split.sha256(),
        "temperature": args.temperature,
        "seed": args.seed if args.seed >= 0 else None,
        "max_tokens": args.max_tokens,
        "server_quantization": args.server_quantization,
    }
    out = _output_dir(args.output_dir)
    with _locked(out):
        return _evaluate(args, task, split, out, identity, ids, wandb)


def _evaluate(
    args: argparse.Namespace,
    task: Task,
    split: Any,
    out: Path,
    identity: Mapping[str, Any],
    ids: Sequence[int],
    wandb: Any,
) -> int:
    """The run itself, in a created and locked output directory (see :func:`run`)."""
    from eval.core import report as rep
    from eval.core.client import ChatClient, api_key_from_env
    from eval.core.runner import FINAL_STATUSES, ResultsLog, RetryPolicy, send_rows, summarize

    chart_name = task.chart_file
    _prepare_output(out, identity, args, chart_name)
    log = ResultsLog(out / PREDICTIONS)

    client = ChatClient(
        args.server_url,
        args.model,
        api_key=api_key_from_env(args.api_key_env),
        timeout=args.timeout,
        temperature=args.temperature,
        seed=identity["seed"],
        max_tokens=args.max_tokens,
    )
    try:
        already = {i for i, r in log.read().items() if r.get("status") in FINAL_STATUSES}
        if any(i not in already for i in ids):
            preflight(args.server_url, min(10.0, args.timeout), args.wait_for_server)
        outcome = send_rows(
            task,
            split,
            client,
            ids,
            log,
            structured=args.structured,
            max_workers=args.max_workers,
            policy=RetryPolicy(retries=args.retries, base_delay=args.retry_base_delay),
            progress=not args.no_progress,
        )
    finally:
        client.close()

    records = log.read()
    summary = summarize(task, records, ids)
    report: dict[str, Any] = {
        "task": task.name,
        "server_quantization": args.server_quantization,
        "created": rep.timestamp(),
        "complete": summary["complete"],
        "args": rep.public_args(vars(args)),
        "versions": rep.package_versions(),
        "dataset": {
            "path": str(Path(args.dataset).resolve()),
            "sha256": identity["dataset_sha256"],
            "rows": len(split),
            "selected": len(ids),
        },
        "run": {
            "sent": outcome.sent,
            "skipped_already_done": outcome.skipped,
            "interrupted": outcome.interrupted,
            "wall_s": outcome.wall_s,
            "unreadable_log_lines": log.skipped_lines,
        },
        **{k: v for k, v in summary.items() if k != "complete"},
        "files": {"predictions": PREDICTIONS, "report": REPORT},
    }
    title = f"{task.name}: {args.model}"
    chart = rep.plot_bars(
        out / chart_name, task.chart_series(summary["metrics"]), f"{title} ({len(ids)} documents)"
    )
    if chart is not None:
        report["files"]["chart"] = chart_name
    scored = [(i, records[i]["score"]) for i in ids if i in records and records[i].get("score") is not None]
    if scored:
        report["files"].update(task.write_extras(out, split, scored, title))
    rep.write_json(out / REPORT, report)
    print(rep.format_summary(report, task.summary_rows(summary["metrics"])))
    print(f"report: {out / REPORT}")
    if wandb is not None:
        _log_wandb(wandb, args, report, out / chart_name if chart else None)

    counts = summary["counts"]
    if outcome.interrupted:
        print(
            f"interrupted: {counts['recorded']} of {counts['selected']} rows have results; "
            "rerun the same command with --resume to finish",
            file=sys.stderr,
        )
        return 130
    if counts["request_failed"]:
        print(
            f"{counts['request_failed']} request(s) failed after retries; rerun with --resume to retry them",
            file=sys.stderr,
        )
        return 1
    if counts["http_error"]:
        print(
            f"{counts['http_error']} request(s) got an HTTP error (see http_errors in the report)",
            file=sys.stderr,
        )
        return 1
    return 0


def _log_wandb(
    wandb: Any, args: argparse.Namespace, report: Mapping[str, Any], chart: Optional[Path]
) -> None:
    """Log the scalar metrics, failure counts and serving numbers (and the chart) to W&B."""
    scalars: dict[str, Any] = {}
    for section in ("metrics", "failures", "serving", "counts"):
        for key, value in report[section].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars[f"{section}/{key}"] = value
    run = wandb.init(
        project=args.wandb_project, name=args.wandb_run_name, config=report["args"], job_type="eval"
    )
    if chart is not None:
        scalars["per_field_chart"] = wandb.Image(str(chart))
    run.log(scalars)
    run.summary.update({k: v for k, v in scalars.items() if k != "per_field_chart"})
    run.finish()


def entry(task_name: str) -> Callable[[Optional[Sequence[str]]], int]:
    """The ``main`` of a task's ``python -m eval.<task>`` module.

    Args:
        task_name (str): a name from :func:`eval.tasks.task_names`.

    Returns:
        Callable[[Optional[Sequence[str]]], int]: ``main(argv=None)``, which runs :func:`main`
        for the task and returns its exit status.
    """

    def task_main(argv: Optional[Sequence[str]] = None) -> int:
        return main(task_name, argv)

    task_main.__doc__ = (
        f"Evaluate the {task_name} task from the command line (see :func:`eval.core.cli.main`)."
    )
    return task_main


def main(task_name: str, argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate a registered task from the command line.

    Errors become ``error: ...`` on stderr with exit status 2; Ctrl-C exits 130 with every
    result written so far kept.

    Args:
        task_name (str): a name from :func:`eval.tasks.task_names`.
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: the exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    from eval.tasks import get_task

    task_cls = get_task(task_name)
    args = build_parser(task_cls).parse_args(argv)
    try:
        try:
            task = task_cls.from_args(args)
        except (ValueError, OSError) as exc:
            raise CLIError(str(exc)) from exc
        return run(args, task)
    except CLIError as exc:
        print(f"error: {redact_text(str(exc), url_secrets(args.server_url))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; results written so far are kept (rerun with --resume)", file=sys.stderr)
        return 130
