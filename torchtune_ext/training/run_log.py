"""A run's numbers on disk: ``metrics.jsonl``, the configured metric logger, and PNG plots.

Every training step's loss, learning rate, throughput (tokens/s, samples/s) and memory, and
every validation's scalar metrics, go both to the config's ``metric_logger`` (torchtune's
``DiskLogger`` by default, ``WandBLogger`` when configured) and to ``output_dir/metrics.jsonl``,
one JSON object per line (``{"kind": "train" | "val", "step": N, ...}``). The plots in
``output_dir/plots/`` are drawn from that file: ``loss.png`` (training loss per step),
``validation.png`` (the tracked validation metric per validation, best marked) and
``memory.png`` (peak memory per step).
"""

from __future__ import annotations

import json
import math
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from torchtune_ext.training.atomic import atomic_save, atomic_write_text

__all__ = ["MetricsLog", "memory_stats", "plot_metrics"]


def memory_stats(device: torch.device) -> dict[str, float]:
    """Peak memory since the last call: CUDA allocator statistics on GPU, process RSS on CPU.

    Args:
        device (torch.device): the training device.

    Returns:
        dict[str, float]: on CUDA torchtune's ``peak_memory_active``/``_alloc``/``_reserved``
        (GiB, peaks reset after reading); elsewhere ``peak_rss_gib``, the process's peak
        resident set size so far (it never decreases).
    """
    if device.type == "cuda":
        from torchtune import training

        return training.get_memory_stats(device=device)
    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


class MetricsLog:
    """Sends metrics to a torchtune metric logger and appends them to ``metrics.jsonl``.

    Args:
        path (Path): the JSONL file.
        logger (Any): a torchtune ``MetricLoggerInterface`` (its ``log_dict`` gets every record).
    """

    def __init__(self, path: Path, logger: Any) -> None:
        self.path = Path(path)
        self.logger = logger
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, kind: str, step: int, values: Mapping[str, Any], **extra: Any) -> None:
        """Record one training step (``kind="train"``) or validation (``"val"``).

        Args:
            kind (str): ``train`` or ``val``.
            step (int): the optimizer step.
            values (Mapping[str, Any]): scalar metrics (validation ones are logged as ``val/<name>``).
            **extra (Any): more JSON fields for the file only (e.g. ``best=True``).
        """
        scalars = {k: float(v) for k, v in values.items()}
        prefix = "val/" if kind == "val" else ""
        self.logger.log_dict({prefix + k: v for k, v in scalars.items()}, step=step)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, "step": step, **scalars, **extra}) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """The file's records (a line cut short by a kill is skipped).

        Returns:
            list[dict[str, Any]]: in order.
        """
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def truncate(self, step: int) -> None:
        """Drop the records after ``step`` (a resumed run redoes those steps).

        Args:
            step (int): the last step to keep.
        """
        kept = [r for r in self.records() if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def _plot(path: Path, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, ylabel: str,
          marks: Sequence[tuple[float, float, str]] = ()) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for label, xs, ys in series:
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        for x, y, text in marks:
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 8), ha="center")
            ax.plot([x], [y], marker="*", markersize=12, color="tab:red")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
        fig.tight_layout()
        atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def plot_metrics(
    records: Sequence[Mapping[str, Any]], out_dir: Path, val_metric: Optional[str] = None
) -> list[Path]:
    """Draw ``loss.png``, ``validation.png`` and ``memory.png`` from ``metrics.jsonl`` records.

    Args:
        records (Sequence[Mapping[str, Any]]): from :meth:`MetricsLog.records`.
        out_dir (Path): where the PNGs go.
        val_metric (Optional[str]): the validation metric to draw (the tracked one).

    Returns:
        list[Path]: the files written (a plot without data is skipped).
    """
    out_dir = Path(out_dir)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    written = []
    if train:
        _plot(out_dir / "loss.png", [("train loss", [r["step"] for r in train], [r["loss"] for r in train])],
              "training loss", "loss")  # fmt: skip
        written.append(out_dir / "loss.png")
        mem_keys = [
            k for k in ("peak_rss_gib", "peak_memory_alloc", "peak_memory_reserved") if k in train[-1]
        ]
        if mem_keys:
            series = [
                (k, [r["step"] for r in train if k in r], [r[k] for r in train if k in r]) for k in mem_keys
            ]
            _plot(out_dir / "memory.png", series, "peak memory", "GiB")
            written.append(out_dir / "memory.png")
    points = [
        (r["step"], r[val_metric]) for r in val if val_metric and isinstance(r.get(val_metric), (int, float))
    ]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    if points:
        best = [(r["step"], r[val_metric], "best") for r in val if r.get("best") and val_metric in r]
        _plot(out_dir / "validation.png", [(val_metric, [p[0] for p in points], [p[1] for p in points])],
              f"validation {val_metric}", val_metric, marks=best[-1:])  # fmt: skip
        written.append(out_dir / "validation.png")
    return written
