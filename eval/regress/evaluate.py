"""``python -m eval.regress run``: evaluate one served model on lm_eval tasks into a run directory.

Order of work: check the server answers, load every task (their data too, so a task that
cannot be loaded fails the command before any request is sent), claim the output directory,
then evaluate the leaf tasks one at a time, writing each one's results as soon as it finishes
(:mod:`eval.regress.runs`). A task that fails (the server errs after the retries, a
log-likelihood task on a server without prompt log-probabilities) is recorded with its error and
the others still run. ``resume`` continues a run: finished tasks are kept, the rest run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

from eval.core.redact import redact_url
from eval.regress.harness import (
    DEFAULT_TASKS,
    STOP_MODES,
    HarnessError,
    evaluate_task,
    has_prefill,
    is_loglikelihood,
    lm_eval_version,
    load_tasks,
    make_model,
    probe_server,
    quiet_lm_eval,
)
from eval.regress.runs import (
    RESULTS_FILE,
    RUN_FILE,
    SAMPLES_DIR,
    RunError,
    jsonable,
    samples_path,
    write_samples,
)

__all__ = ["RESUME_KEYS", "RunOptions", "RunOutcome", "results_table", "run_model"]

#: Run properties that must match for ``resume`` to continue a run.
RESUME_KEYS = ("model", "tasks", "include_paths", "limit", "stop", "server_quantization", "lm_eval")


@dataclass(frozen=True)
class RunOptions:
    """What to evaluate and how to talk to the server.

    Attributes:
        server_url (str): OpenAI-compatible base URL, ending in ``/v1``.
        model (str): the served model name.
        tasks (tuple[str, ...]): lm_eval task, group or tag names (or task YAML paths).
        include_paths (tuple[str, ...]): more folders of task YAMLs.
        limit (Optional[int]): the first N items of each task only.
        num_concurrent (int): requests in flight.
        retries (int): extra attempts per request after an error.
        timeout (float): seconds per request.
        stop (str): where the stop strings of chat tasks apply: ``server`` (sent as ``stop``),
            ``client`` (cut here) or ``auto`` (server for vLLM, else client).
        tokenizer (Optional[str]): local tokenizer directory for log-likelihood tasks.
        server_quantization (Optional[str]): how the server's weights are quantized (recorded).
    """

    server_url: str
    model: str
    tasks: tuple[str, ...] = DEFAULT_TASKS
    include_paths: tuple[str, ...] = ()
    limit: Optional[int] = None
    num_concurrent: int = 8
    retries: int = 3
    timeout: float = 300.0
    stop: str = "auto"
    tokenizer: Optional[str] = None
    server_quantization: Optional[str] = None

    def check(self) -> None:
        """Raise ValueError for an unusable option (the message names the flag)."""
        if not self.server_url.startswith(("http://", "https://")):
            raise ValueError(f"--server_url must start with http:// or https://, got {self.server_url!r}")
        if not self.tasks:
            raise ValueError("--tasks names no task")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.num_concurrent < 1:
            raise ValueError(f"--num_concurrent must be >= 1, got {self.num_concurrent}")
        if self.retries < 0:
            raise ValueError(f"--retries must be >= 0, got {self.retries}")
        if self.timeout <= 0:
            raise ValueError(f"--timeout must be > 0, got {self.timeout}")
        if self.stop not in ("auto", *STOP_MODES):
            raise ValueError(f"--stop must be auto, {' or '.join(STOP_MODES)}, got {self.stop!r}")


@dataclass
class RunOutcome:
    """What a run did.

    Attributes:
        path (Path): the run directory.
        done (list[str]): leaf tasks evaluated now.
        kept (list[str]): leaf tasks already finished by an earlier run (resume).
        failed (dict[str, str]): leaf task → error.
        interrupted (bool): Ctrl-C stopped it.
    """

    path: Path
    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def _timestamp() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _preflight(server_url: str, timeout: float) -> None:
    """Fail fast when nothing answers at the server URL (the evaluators' check, as a RunError)."""
    from eval.core.cli import CLIError, preflight

    try:
        preflight(server_url, timeout)
    except CLIError as exc:
        raise RunError(str(exc)) from exc


def _claim(out: Path, identity: Mapping[str, Any], resume: bool, overwrite: bool) -> tuple[dict, dict]:
    """Check the output directory against this run; return the status and results to keep."""
    run_file, results_file = out / RUN_FILE, out / RESULTS_FILE
    if overwrite:
        for name in (RUN_FILE, RESULTS_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / SAMPLES_DIR, ignore_errors=True)
    if not run_file.exists():
        return {}, {}
    try:
        before = json.loads(run_file.read_text(encoding="utf-8"))
        results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    except ValueError as exc:
        raise RunError(f"{out}: run.json or results.json is not valid JSON ({exc}); use --overwrite") from exc
    status = dict(before.get("status") or {})
    if not resume:
        if any(v == "done" for v in status.values()):
            raise RunError(
                f"{out} already holds a run ({sum(v == 'done' for v in status.values())} task(s) done); "
                "pass --resume to finish it or --overwrite to start over"
            )
        return {}, {}
    old = before.get("identity") or {}
    diff = [k for k in RESUME_KEYS if old.get(k) != identity.get(k)]
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {identity.get(k)!r}" for k in diff)
        raise RunError(
            f"--resume: {out} holds a different run ({shown}); use another --output_dir or --overwrite"
        )
    return status, dict(results.get("tasks") or {})


def _headline(entry: Mapping[str, Any]) -> str:
    parts = []
    for m in entry.get("metrics", {}).values():
        if isinstance(m.get("value"), (int, float)):
            parts.append(f"{m['metric']}/{m['filter']} {m['value']:.4f}")
    return ", ".join(parts) or "no metrics"


def results_table(results: Mapping[str, Mapping[str, Any]], status: Mapping[str, str]) -> str:
    """A text table of a run's per-task metrics (value ± lm_eval's standard error, items).

    Args:
        results (Mapping[str, Mapping[str, Any]]): leaf task → ``results.json`` entry.
        status (Mapping[str, str]): leaf task → ``done`` or the error.

    Returns:
        str: the table.
    """
    rows = [("task", "metric", "value", "stderr", "n")]
    for name in status:
        entry = results.get(name)
        if status[name] != "done" or entry is None:
            rows.append((name, "FAILED", status[name][:60], "", ""))
            continue
        for m in entry["metrics"].values():
            value, err = m.get("value"), m.get("stderr")
            rows.append(
                (
                    name,
                    f"{m['metric']}/{m['filter']}",
                    f"{value:.4f}" if isinstance(value, (int, float)) else str(value),
                    f"{err:.4f}" if isinstance(err, (int, float)) else "n/a",
                    str(entry.get("n")),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if k == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def run_model(
    opts: RunOptions,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> RunOutcome:
    """Evaluate one served model on ``opts.tasks`` into ``out`` (see the module docstring).

    Args:
        opts (RunOptions): what to run.
        out (str | Path): the run directory.
        resume (bool): keep the finished tasks of an earlier run of the same identity.
        overwrite (bool): discard an earlier run in ``out``.
        verbose (bool): show lm_eval's INFO log.
        log (Callable[[str], None]): where progress lines go.

    Returns:
        RunOutcome: what was done.

    Raises:
        ValueError: for an unusable option.
        RunError: if the server is unreachable or ``out`` holds another run.
        HarnessError: if lm_eval is missing or a task cannot be found or loaded.
    """
    opts.check()
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    out = Path(out)
    quiet_lm_eval(verbose)
    _preflight(opts.server_url, min(10.0, opts.timeout))
    server = probe_server(opts.server_url, min(10.0, opts.timeout))
    vllm = server["kind"] == "vllm"
    stop = opts.stop if opts.stop != "auto" else ("server" if vllm else "client")
    identity = {
        "model": opts.model,
        "server_url": redact_url(opts.server_url),
        "tasks": list(opts.tasks),
        "include_paths": [str(Path(p).resolve()) for p in opts.include_paths],
        "limit": opts.limit,
        "stop": stop,
        "server": server,
        "server_quantization": opts.server_quantization,
        "lm_eval": lm_eval_version(),
    }
    log(f"loading tasks: {', '.join(opts.tasks)}")
    manager, loaded, groups = load_tasks(opts.tasks, opts.include_paths)
    status, results = _claim(out, identity, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "identity": identity,
        "tasks": {spec: list(leaves) for spec, leaves in loaded.items()},
        "groups": groups,
        "status": {},
        "created": _timestamp(),
    }
    outcome = RunOutcome(out)
    models: dict[str, Any] = {}

    def save() -> None:
        meta["updated"] = _timestamp()
        _write_json(out / RESULTS_FILE, {"tasks": results})
        _write_json(out / RUN_FILE, meta)

    leaves: dict[str, Any] = {}
    for tasks in loaded.values():
        leaves.update(tasks)
    for name in leaves:
        meta["status"][name] = status.get(name, "pending")
    save()
    for name, task in leaves.items():
        if resume and status.get(name) == "done" and name in results:
            outcome.kept.append(name)
            continue
        kind = "completions" if is_loglikelihood(task) else "chat"
        prefill = None
        if kind == "chat" and has_prefill(task):
            prefill = "continued" if vllm else "not continued"
            if not vllm:
                log(
                    f"warning: {name} prefills the model's reply (gen_prefix) and this server cannot "
                    "continue a prefilled reply (vLLM can): its replies start anew and may not score as intended"
                )
        log(
            f"{name}: {task.get_config('output_type')} via /{'chat/completions' if kind == 'chat' else 'completions'} ..."
        )
        try:
            if kind not in models:
                models[kind] = make_model(
                    kind,
                    opts.server_url,
                    opts.model,
                    num_concurrent=opts.num_concurrent,
                    retries=opts.retries,
                    timeout=opts.timeout,
                    send_stop=stop == "server",
                    continue_prefill=vllm,
                    tokenizer=opts.tokenizer,
                )
            entry, samples = evaluate_task(
                models[kind], name, task, manager, chat=kind == "chat", limit=opts.limit
            )
        except KeyboardInterrupt:
            outcome.interrupted = True
            meta["status"][name] = "interrupted"
            save()
            break
        except Exception as exc:  # a failed task must not lose the others: record it and go on
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            error = f"{type(exc).__name__}: {message}" if not isinstance(exc, HarnessError) else message
            outcome.failed[name] = error
            meta["status"][name] = f"failed: {error}"
            results.pop(name, None)
            log(f"{name}: FAILED ({error})")
        else:
            write_samples(samples_path(out, name), samples)
            entry["prefill"] = prefill
            results[name] = entry
            meta["status"][name] = "done"
            outcome.done.append(name)
            log(f"{name}: {_headline(entry)} ({entry['n']} items, {entry['wall_s']:.1f} s)")
        save()
    return outcome
