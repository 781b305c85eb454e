"""``python -m eval.regress compare``: the base run against the fine-tuned run, task by task.

For each task both runs finished, and each of its metrics aggregated by a mean (accuracy, exact
match, ...), the per-item scores of the two runs are paired on ``(task, doc_id)`` and compared
with :func:`eval.regress.stats.compare_paired`. An lm_eval group (e.g. ``mmlu_llama``) is one
row per metric its tasks share, over the pooled items (each task weighted by its size); a tag
(e.g. ``local_chat``) is its tasks, one row each; the verdict rule is in
:mod:`eval.regress.stats`. Items only one run scored (another ``--limit``) are left out and
counted. Two runs that sent different prompts for the same item (another task version, chat
formatting or few-shot setting) are refused: their scores do not measure the same thing.

Files in the output directory: ``report.json`` (the rule, both runs' identities, one row per
task and metric, anything skipped and why) and ``regression.png`` (each delta with its
``z x SE`` interval and the minimum-effect band).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

from eval.regress.runs import Run, jsonable
from eval.regress.stats import IMPROVED, REGRESSED, WITHIN_NOISE, Rule, compare_paired, overall_verdict

__all__ = [
    "CompareError",
    "REPORT_FILE",
    "PLOT_FILE",
    "compare_runs",
    "format_report",
    "plot_report",
    "write_report",
]

REPORT_FILE = "report.json"
PLOT_FILE = "regression.png"


class CompareError(Exception):
    """The two runs cannot be compared (the message says which task and item)."""


def _side(run: Run) -> dict[str, Any]:
    ident = run.identity
    return {
        "run": str(run.path.resolve()),
        "model": ident.get("model"),
        "server_url": ident.get("server_url"),
        "server_quantization": ident.get("server_quantization"),
        "limit": ident.get("limit"),
        "lm_eval": ident.get("lm_eval"),
    }


def _numeric(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _scores(
    run: Run, leaves: Sequence[str], metric: str, filter_name: str
) -> dict[tuple[str, int], tuple[float, Any]]:
    """(leaf, doc_id) → (score, prompt hash) for one metric and filter."""
    out: dict[tuple[str, int], tuple[float, Any]] = {}
    for leaf in leaves:
        for rec in run.samples(leaf):
            if rec.get("filter") != filter_name:
                continue
            value = _numeric((rec.get("metrics") or {}).get(metric))
            if value is None:
                continue
            out[(leaf, int(rec["doc_id"]))] = (value, rec.get("prompt_hash"))
    return out


def _mean_metrics(run: Run, leaves: Sequence[str]) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """Metrics every leaf reports and aggregates by a mean; and the others' keys."""
    keys: Optional[dict[str, tuple[str, str, bool]]] = None
    other: set[str] = set()
    for leaf in leaves:
        here = {}
        for key, m in run.results[leaf].get("metrics", {}).items():
            if m.get("aggregation") == "mean":
                here[key] = (m["metric"], m["filter"], bool(m.get("higher_is_better", True)))
            else:
                other.add(key)
        keys = here if keys is None else {k: v for k, v in keys.items() if k in here}
    return list((keys or {}).values()), sorted(other)


def _compare_unit(
    base: Run, tuned: Run, requested: str, label: str, leaves: Sequence[str], rule: Rule, skipped: list
) -> list[dict[str, Any]]:
    """The rows of one task (or one pooled group): one per metric aggregated by a mean."""
    runs = (("base", base), ("fine-tuned", tuned))
    unfinished = [(side, leaf) for side, run in runs for leaf in leaves if not run.done(leaf)]
    if unfinished:
        side, leaf = unfinished[0]
        skipped.append({"task": label, "reason": f"{leaf} did not finish in the {side} run"})
        return []
    metrics, other = _mean_metrics(base, leaves)
    for key in other:
        skipped.append(
            {"task": label, "reason": f"metric {key} is not aggregated by a mean (no paired comparison)"}
        )
    if not metrics and not other:
        skipped.append({"task": label, "reason": "its tasks share no metric aggregated by a mean"})
    rows = []
    for metric, filter_name, higher in metrics:
        b = _scores(base, leaves, metric, filter_name)
        t = _scores(tuned, leaves, metric, filter_name)
        common = [k for k in b if k in t]
        for key in common:
            if b[key][1] != t[key][1]:
                raise CompareError(
                    f"{key[0]} item {key[1]}: the two runs sent different prompts (prompt hashes differ); "
                    "compare runs of the same task version and settings"
                )
        if not common:
            skipped.append({"task": label, "reason": f"{metric}/{filter_name}: no item scored in both runs"})
            continue
        base_scores = [b[k][0] for k in common]
        tuned_scores = [t[k][0] for k in common]
        comparison = compare_paired(base_scores, tuned_scores, rule, higher)
        rate = all(0.0 <= x <= 1.0 for x in base_scores + tuned_scores)
        rows.append(
            {
                "task": label,
                "requested": requested,
                "tasks": list(leaves),
                "metric": metric,
                "filter": filter_name,
                "higher_is_better": higher,
                "scale": 100 if rate else 1,
                "n_base": len(b),
                "n_tuned": len(t),
                **comparison.to_dict(),
            }
        )
    return rows


def compare_runs(base: Run, tuned: Run, rule: Rule, tasks: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Compare two runs (see the module docstring).

    Args:
        base (Run): the base model's run.
        tuned (Run): the fine-tuned model's run.
        rule (Rule): the verdict thresholds.
        tasks (Optional[Sequence[str]]): requested names to compare (default: every name in both).

    Returns:
        dict[str, Any]: the report (``rows``, ``skipped``, ``verdict``, ``rule``, ``base``, ``tuned``).

    Raises:
        CompareError: if a task expands to different tasks in the two runs, the runs sent
            different prompts for an item, or nothing is left to compare.
    """
    names = list(tasks) if tasks is not None else [t for t in base.tasks if t in tuned.tasks]
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name in names:
        if name not in base.tasks or name not in tuned.tasks:
            where = "base" if name not in base.tasks else "fine-tuned"
            skipped.append({"task": name, "reason": f"not in the {where} run"})
            continue
        leaves = base.tasks[name]
        if sorted(leaves) != sorted(tuned.tasks[name]):
            raise CompareError(
                f"{name}: the runs expanded it to different tasks ({', '.join(leaves)} vs "
                f"{', '.join(tuned.tasks[name])}); compare runs of the same lm_eval tasks"
            )
        # a group is one pooled set of items; a task is itself; a tag is its tasks, one by one
        units = [(name, leaves)] if name in base.groups else [(leaf, [leaf]) for leaf in leaves]
        for label, unit in units:
            rows.extend(_compare_unit(base, tuned, name, label, unit, rule, skipped))
    if not rows:
        reasons = "; ".join(f"{s['task']}: {s['reason']}" for s in skipped) or "no task in both runs"
        raise CompareError(f"nothing to compare ({reasons})")
    verdicts = [r["verdict"] for r in rows]
    return {
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "verdict": overall_verdict(verdicts),
        "counts": {v: verdicts.count(v) for v in (REGRESSED, WITHIN_NOISE, IMPROVED)},
        "rule": rule.to_dict(),
        "base": _side(base),
        "tuned": _side(tuned),
        "rows": rows,
        "skipped": skipped,
    }


def _fmt(x: Optional[float], scale: float, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * scale:+.2f}" if signed else f"{x * scale:.2f}"


def format_report(report: Mapping[str, Any]) -> str:
    """The terminal table: one line per task and metric, then the verdict.

    Values of 0-1 metrics are shown in points (x100).

    Args:
        report (Mapping[str, Any]): from :func:`compare_runs`.

    Returns:
        str: the table.
    """
    rule = report["rule"]
    z = rule["z"]
    head = ("task", "metric", "n", "base", "tuned", "delta", f"+-{z:g}xSE", "verdict")
    rows = [head]
    for r in report["rows"]:
        s = r["scale"]
        rows.append(
            (
                r["task"],
                f"{r['metric']}/{r['filter']}",
                str(r["n"]),
                _fmt(r["base"], s),
                _fmt(r["tuned"], s),
                _fmt(r["delta"], s, signed=True),
                "n/a" if r["se"] is None else f"{z * r['se'] * s:.2f}",
                r["verdict"].upper() if r["verdict"] == REGRESSED else r["verdict"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        f"regression check: {report['base']['model']} (base) vs {report['tuned']['model']} (fine-tuned)",
        f"rule: {rule['text']} (SE: {rule['se']})",
        "",
    ]
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 1, 7) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if k == 0:
            lines.append("-" * max(len(line) for line in lines[-1:]))
    for s in report.get("skipped", []):
        lines.append(f"skipped: {s['task']}: {s['reason']}")
    counts = report["counts"]
    lines.append(
        f"verdict: {report['verdict'].upper()} ({counts[REGRESSED]} regressed, {counts[WITHIN_NOISE]} within noise, "
        f"{counts[IMPROVED]} improved; 0-1 metrics in points)"
    )
    return "\n".join(lines)


def plot_report(report: Mapping[str, Any], path: Path) -> Path:
    """A small chart: each row's delta with its ``z x SE`` interval, the minimum-effect band
    shaded, coloured by verdict (matplotlib, Agg backend).

    Args:
        report (Mapping[str, Any]): from :func:`compare_runs`.
        path (Path): PNG destination.

    Returns:
        Path: the file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    z = report["rule"]["z"]
    colors = {REGRESSED: "#c0392b", WITHIN_NOISE: "#7f8c8d", IMPROVED: "#27ae60"}
    scales = {r["scale"] for r in rows}
    unit = "points" if scales == {100} else "metric units (0-1 metrics in points)"
    labels = [f"{r['task']}\n{r['metric']}/{r['filter']} (n={r['n']})" for r in rows]
    height = 1.1 + 0.5 * len(rows)
    fig, ax = plt.subplots(figsize=(7.5, height))
    try:
        band = report["rule"]["min_effect"] * (100 if scales == {100} else 1)
        ax.axvspan(-band, band, color="#ecf0f1", zorder=0, label=f"|delta| < min effect ({band:g})")
        ax.axvline(0, color="black", linewidth=0.8, zorder=1)
        for i, r in enumerate(rows):
            s = r["scale"]
            err = None if r["se"] is None else z * r["se"] * s
            ax.errorbar(r["delta"] * s, i, xerr=err, fmt="o", color=colors[r["verdict"]], capsize=4, zorder=2)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(f"fine-tuned - base, {unit}; bars: +-{z:g} x SE (paired)")
        ax.set_title(
            f"{report['tuned']['model']} vs {report['base']['model']}: {report['verdict']}", fontsize=9
        )
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7, frameon=False)
        # fixed margins in inches: tight_layout renders the figure twice
        fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.3 / height, bottom=0.55 / height)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def write_report(report: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write ``report.json`` and ``regression.png`` into ``out``.

    Args:
        report (dict[str, Any]): from :func:`compare_runs` (gets a ``files`` entry).
        out (Path): the output directory.

    Returns:
        dict[str, Any]: the report as written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_report(report, out / PLOT_FILE)
    report["files"] = {"report": REPORT_FILE, "plot": PLOT_FILE}
    tmp = out / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(jsonable(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / REPORT_FILE)
    return report
