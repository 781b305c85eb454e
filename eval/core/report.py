"""Report files, serving statistics and the terminal summary of an evaluation run.

Files written to ``--output_dir``:

* ``report.json`` — task, arguments (no secrets), package versions, dataset path/hash/size,
  counts, failures by kind (with the servers' messages), latency and token statistics, and
  the task's metrics.
* ``<chart>.png`` — horizontal bar chart of the task's per-item values (W-2: per-field accuracy).

The terminal gets a two-column table of the headline numbers.
"""

from __future__ import annotations

import json
import math
import os
import platform
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "pct",
    "percentile",
    "serving_stats",
    "SECRET_ARG_NAMES",
    "package_versions",
    "public_args",
    "write_json",
    "format_table",
    "format_summary",
    "plot_bars",
    "timestamp",
]

#: Argument names that are never written out (the key itself never reaches argparse anyway).
SECRET_ARG_NAMES = frozenset({"api_key", "token", "password", "secret"})

_PACKAGES = ("torchtune-ext", "openai", "datasets", "pydantic", "pillow", "matplotlib", "tqdm", "wandb")


def timestamp() -> str:
    """Current UTC time, ISO 8601 to the second.

    Returns:
        str: e.g. ``2025-01-31T12:00:00+00:00``.
    """
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def package_versions() -> dict[str, Optional[str]]:
    """Versions of Python, the platform and the packages the evaluator relies on.

    Returns:
        dict[str, Optional[str]]: name → version (None when not installed).
    """
    out: dict[str, Optional[str]] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def public_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments safe to write: secrets dropped, credentials in URLs masked, paths as strings.

    Args:
        args (Mapping[str, Any]): parsed arguments (``vars(namespace)``).

    Returns:
        dict[str, Any]: JSON-serialisable copy without secret-looking names; every string goes
        through :func:`eval.core.redact.redact_text` (``http://user:***@host/v1``).
    """
    from eval.core.redact import redact_text

    out: dict[str, Any] = {}
    for key, value in args.items():
        if key.lower() in SECRET_ARG_NAMES or key.startswith("_"):
            continue
        value = str(value) if isinstance(value, Path) else value
        out[key] = redact_text(value) if isinstance(value, str) else value
    return out


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename).

    Args:
        path (Path): destination.
        obj (Any): JSON-serialisable object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def format_table(rows: Sequence[tuple[str, str]], title: Optional[str] = None) -> str:
    """Two-column text table.

    Args:
        rows (Sequence[tuple[str, str]]): (name, value) pairs; a ("", "") row is a separator.
        title (Optional[str]): heading.

    Returns:
        str: the table.
    """
    width = max([len(n) for n, _ in rows] + [6])
    vwidth = max([len(v) for _, v in rows] + [5])
    rule = "-" * (width + vwidth + 3)
    lines = [title, rule] if title else [rule]
    for name, value in rows:
        lines.append(rule if (name, value) == ("", "") else f"{name:<{width}} | {value:>{vwidth}}")
    lines.append(rule)
    return "\n".join(lines)


def pct(x: Optional[float]) -> str:
    """Format a rate in [0, 1] as a percentage with two decimals.

    Args:
        x (Optional[float]): the rate (None when undefined).

    Returns:
        str: e.g. ``"98.25 %"``, or ``"n/a"``.
    """
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _num(x: Optional[float], unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.3f}{unit}"


def format_summary(report: Mapping[str, Any], task_rows: Sequence[tuple[str, str]]) -> str:
    """The terminal summary: task metrics, then counts, failures and serving numbers.

    Args:
        report (Mapping[str, Any]): the report dict (``counts``, ``failures``, ``serving``).
        task_rows (Sequence[tuple[str, str]]): the task's own rows (``TaskAdapter.summary_rows``).

    Returns:
        str: the table.
    """
    counts, failures, serving = report["counts"], report["failures"], report["serving"]
    rows: list[tuple[str, str]] = list(task_rows)
    rows.append(("", ""))
    rows.append(("documents selected / recorded", f"{counts['selected']} / {counts['recorded']}"))
    rows.append(("answered (HTTP 200)", str(counts["ok"])))
    for kind, n in failures.items():
        rows.append((f"failures: {kind}", str(n)))
    rows.append(("", ""))
    rows.append(
        (
            "latency p50 / p95",
            f"{_num(serving['latency_p50_s'], ' s')} / {_num(serving['latency_p95_s'], ' s')}",
        )
    )
    rows.append(("output tokens/s (per request)", _num(serving["output_tokens_per_s"])))
    status = "complete" if report["complete"] else "INCOMPLETE (rerun with --resume)"
    return format_table(rows, title=f"{report['task']} evaluation of {report['args'].get('model')}: {status}")


def plot_bars(path: Path, series: Mapping[str, Mapping[str, float]], title: str) -> Optional[Path]:
    """Horizontal grouped bar chart (matplotlib, Agg backend), one group per label.

    Args:
        path (Path): PNG destination.
        series (Mapping[str, Mapping[str, float]]): series name → {label: value in [0, 1]};
            labels are taken from the first series, in its order.
        title (str): chart title.

    Returns:
        Optional[Path]: the file, or None when there is nothing to plot.
    """
    if not series or not next(iter(series.values())):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(next(iter(series.values())))
    n_series = len(series)
    height = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(9, max(3.0, (0.12 + 0.1 * n_series) * len(labels) + 1.2)))
    try:
        for k, (name, values) in enumerate(series.items()):
            ys = [i + (k - (n_series - 1) / 2) * height for i in range(len(labels))]
            ax.barh(ys, [100 * values.get(label, 0.0) for label in labels], height=height, label=name)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        if n_series > 1:
            ax.legend(
                loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=n_series, fontsize=8, frameon=False
            )
        # fixed margins: tight_layout renders the figure twice, which costs more than the plot itself
        longest = max(len(label) for label in labels)
        fig.subplots_adjust(left=min(0.5, 0.02 + 0.0085 * longest), right=0.97, top=0.97, bottom=0.06)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Percentile with linear interpolation between closest ranks (numpy's default method).

    Args:
        values (Sequence[float]): samples (any order).
        q (float): the percentile in [0, 100].

    Returns:
        Optional[float]: the percentile, or None when there are no samples.

    Raises:
        ValueError: if ``q`` is outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def serving_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Latency and throughput of the requests the server answered.

    Only records with ``status == "ok"`` count. Latency is the duration of the attempt that
    got the answer (retries and back-off excluded). ``output_tokens_per_s`` is the sum of
    ``usage.completion_tokens`` over the sum of those latencies (the per-request decode rate,
    weighted by time), counted over answers that report usage.

    Args:
        records (Iterable[Mapping[str, Any]]): result records (see :mod:`eval.core.runner`).

    Returns:
        dict[str, Any]: ``latency_p50_s``, ``latency_p95_s``, ``latency_mean_s``,
        ``output_tokens``, ``output_tokens_per_s`` and ``answers_with_usage``.
    """
    latencies: list[float] = []
    tokens = 0
    token_time = 0.0
    with_usage = 0
    for rec in records:
        if rec.get("status") != "ok" or rec.get("latency_s") is None:
            continue
        latencies.append(float(rec["latency_s"]))
        usage = rec.get("usage") or {}
        completion = usage.get("completion_tokens")
        if isinstance(completion, int) and not isinstance(completion, bool):
            tokens += completion
            token_time += float(rec["latency_s"])
            with_usage += 1
    return {
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_mean_s": sum(latencies) / len(latencies) if latencies else None,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / token_time if token_time > 0 else None,
        "answers_with_usage": with_usage,
    }
