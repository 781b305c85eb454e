"""Validation by the task's own metric: greedy answers on a held-out split, scored as the evaluator scores.

A recipe config names it as ``dataset_val``::

    dataset_val:
      _component_: torchtune_ext.training.TaskValidation
      task: w2                      # a task of the registry (eval/tasks/<task>/)
      data: ${data_dir}/validation  # what the task's load() reads (python -m eval.<task> --dataset)
      limit: 16                     # the first 16 rows (null: all)
    run_val_every_n_steps: 20

Every row is asked the way the evaluator asks it (``task.sample``: the image and the task's
prompt, in ``CONTENT_ORDER``), answered greedily by the model being trained
(:func:`torchtune_ext.generation.greedy_generate`), and scored with ``task.score``; the rows'
scores become metrics with the evaluator's own :func:`eval.core.runner.summarize`. Each
validation writes, under ``output_dir/validation/step_<N>/``:

* ``predictions.jsonl``: one record per row in the evaluator's format (``id``, ``status``,
  ``content``, ``finish_reason``, ``usage``, ``latency_s``, ..., ``score``);
* ``run.json``: the run's identity as the evaluator records it, so that
  ``python -m eval.<task> --resume --output_dir output_dir/validation/step_<N> --dataset DATA
  --model step_<N> --limit N --max_tokens M --seed -1`` re-reads the records, sends nothing
  and prints the report of exactly these numbers;
* ``metrics.json``: ``summarize``'s counts, failures and task metrics, with the step.

Validation leaves training untouched: the model goes back to train mode, its KV caches are
deleted again, its loss-specific output (chunked logits, hidden states) is restored, and every
random number generator (torch CPU and CUDA, Python, NumPy) is restored, so the training
losses are bit-identical with and without it. Under FSDP the rows are split across ranks,
every rank runs the same number of forward passes, and every rank gets every record.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from eval.core.records import open_upright
from eval.core.report import timestamp
from eval.core.runner import summarize
from eval.core.splits import DatasetError, InputError
from eval.core.task import Response, Sample, Task
from eval.tasks import UnknownTaskError, get_task
from torchtune_ext.generation import greedy_generate_batch, user_message
from torchtune_ext.modules import model_logits
from torchtune_ext.training.atomic import atomic_write_text
from torchtune_ext.training.config_check import ConfigError
from torchtune_ext.training.keep_best import BestTracker

__all__ = ["TaskValidation", "ValidationResult", "ValidationRunner", "preserved_rng", "setup_validation"]


@dataclass
class ValidationResult:
    """One validation's outcome.

    Attributes:
        step (int): the optimizer step it ran after.
        metrics (dict[str, Any]): the task's metrics (``task.aggregate``).
        summary (dict[str, Any]): :func:`eval.core.runner.summarize`'s full result.
        records (list[dict[str, Any]]): the evaluator-format records, by id.
        seconds (float): wall time.
    """

    step: int
    metrics: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    seconds: float

    def scalars(self) -> dict[str, float]:
        """The metrics that are numbers, for metric loggers and plots.

        Returns:
            dict[str, float]: name -> value (nested and missing values left out).
        """
        return {
            k: float(v)
            for k, v in self.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }


@contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Run a block without consuming any random number the training loop draws.

    Restores the torch CPU (and, on CUDA, the device's) generator, Python's ``random`` and
    NumPy's global state on exit.

    Args:
        device (torch.device): the training device.

    Yields:
        None: inside the block.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class TaskValidation:
    """Greedy answers on a held-out split, scored by the task (``dataset_val`` of our recipes).

    Args:
        task (str): a task of the registry (:func:`eval.tasks.get_task`), e.g. ``w2``.
        data (str): the split the task reads (``python -m eval.<task> --dataset``'s value).
        task_options (Optional[dict[str, Any]]): the task's options (e.g. ``{labels: ...}``).
        limit (Optional[int]): validate on the first ``limit`` rows; all if None.
        max_new_tokens (Optional[int]): generation budget per row; if None, 1.25 times the
            longest target answer of the selected rows (in the model's tokens) plus 8.
        batch_size (int): rows answered together (left-padded, one KV cache row each).

    Raises:
        ConfigError: for an unknown task or option, an unreadable split or a bad ``limit``,
            naming the ``dataset_val`` key.
    """

    def __init__(
        self,
        task: str,
        data: str,
        task_options: Optional[dict[str, Any]] = None,
        limit: Optional[int] = None,
        max_new_tokens: Optional[int] = None,
        batch_size: int = 1,
    ) -> None:
        try:
            self.task: Task = get_task(task).from_options(**dict(task_options or {}))
        except UnknownTaskError as e:
            raise ConfigError(f"dataset_val.task: {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"dataset_val.task_options: {e}") from None
        try:
            self.split = self.task.load(data)
        except DatasetError as e:
            raise ConfigError(f"dataset_val.data: {e}") from None
        if limit is not None and limit < 1:
            raise ConfigError(f"dataset_val.limit must be >= 1 or null, got {limit}")
        if batch_size < 1:
            raise ConfigError(f"dataset_val.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError(f"dataset_val.max_new_tokens must be >= 1 or null, got {max_new_tokens}")
        self.data = str(data)
        self.ids = list(range(len(self.split) if limit is None else min(limit, len(self.split))))
        if not self.ids:
            raise ConfigError(f"dataset_val.data: {data} has no rows")
        self._max_new_tokens = max_new_tokens
        self._samples: dict[int, Sample] = {}
        self._input_errors: dict[int, str] = {}
        for i in self.ids:
            try:
                self._samples[i] = self.task.sample(self.split.row(i), i)
            except InputError as e:
                self._input_errors[i] = str(e)
        if not self._samples:
            raise ConfigError(
                f"dataset_val.data: no usable row in {data}: {next(iter(self._input_errors.values()))}"
            )

    def budget(self, transform: Any) -> int:
        """The generation budget per row (``max_new_tokens`` or one derived from the targets).

        Args:
            transform (Any): the model transform (its ``encode`` counts tokens).

        Returns:
            int: new tokens allowed per row.
        """
        if self._max_new_tokens is not None:
            return self._max_new_tokens
        longest = max(
            len(transform.encode(self.task.answer(s.target), add_bos=False, add_eos=False))
            for s in self._samples.values()
        )
        return math.ceil(1.25 * longest) + 8

    def _messages(self, sample: Sample) -> list[Any]:
        return [user_message(open_upright(sample.image), sample.prompt)]

    def run(
        self,
        model: nn.Module,
        transform: Any,
        *,
        step: int,
        device: torch.device,
        dtype: torch.dtype,
        out_dir: Optional[Path] = None,
        world_size: int = 1,
        rank: int = 0,
    ) -> ValidationResult:
        """Answer and score every selected row with ``model``; write the files if ``out_dir``.

        Args:
            model (nn.Module): the model being trained (left as it was found).
            transform (Any): its model transform (``Llama3VisionTransform``).
            step (int): the current optimizer step (recorded).
            device (torch.device): the model's device.
            dtype (torch.dtype): the model's dtype.
            out_dir (Optional[Path]): where to write ``predictions.jsonl``, ``run.json`` and
                ``metrics.json`` (rank 0 passes it; None writes nothing).
            world_size (int): processes sharing the model (FSDP); each answers a share.
            rank (int): this process's rank.

        Returns:
            ValidationResult: the metrics and records (the same on every rank).
        """
        from torchtune.modules.common_utils import local_kv_cache

        start = time.perf_counter()
        budget = self.budget(transform)
        usable = sorted(self._samples)
        mine = usable[rank::world_size]
        size = self.batch_size
        batches = math.ceil(math.ceil(len(usable) / world_size) / size)  # the same on every rank
        prompt_lens = [
            len(transform({"messages": self._with_reply(i)}, inference=True)["tokens"]) for i in mine
        ]
        longest_prompt = self._all_max(max(prompt_lens, default=0), world_size, device)
        cache_len = longest_prompt + budget
        if transform.max_seq_len is not None and cache_len > transform.max_seq_len:
            raise ValueError(
                f"validation: a prompt of {longest_prompt} tokens plus max_new_tokens={budget} exceed "
                f"the tokenizer's max_seq_len={transform.max_seq_len}; lower dataset_val.max_new_tokens"
            )
        all_finished = self._all_finished(device) if world_size > 1 else None
        records: list[dict[str, Any]] = []
        was_training = model.training
        model.eval()
        try:
            with (
                preserved_rng(device),
                model_logits(model),
                local_kv_cache(
                    model,
                    batch_size=size,
                    device=device,
                    dtype=dtype,
                    encoder_max_seq_len=transform.image_seq_len,
                    decoder_max_seq_len=cache_len,
                ),
            ):
                for k in range(batches):
                    real = mine[k * size : (k + 1) * size]
                    # Short batches are filled with repeats (results dropped): the caches hold
                    # `size` rows, and FSDP ranks must step together.
                    rows = real + [(real or mine or usable)[0]] * (size - len(real))
                    t0 = time.perf_counter()
                    answers = greedy_generate_batch(
                        model,
                        transform,
                        [self._messages(self._samples[i]) for i in rows],
                        max_new_tokens=budget,
                        device=device,
                        dtype=dtype,
                        max_seq_len=cache_len,
                        all_finished=all_finished,
                    )
                    seconds = time.perf_counter() - t0
                    for i, ids in zip(real, answers, strict=False):
                        records.append(self._record(self._samples[i], transform, ids, budget, seconds))
        finally:
            model.train(was_training)
        if world_size > 1:
            gathered: list[Any] = [None] * world_size
            torch.distributed.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        records += [
            {**asdict(Response(status="input_error", error=err)), "id": i, "score": None}
            for i, err in self._input_errors.items()
        ]
        records.sort(key=lambda r: r["id"])
        summary = summarize(self.task, {r["id"]: r for r in records}, self.ids)
        result = ValidationResult(
            step=step,
            metrics=summary["metrics"],
            summary=summary,
            records=records,
            seconds=time.perf_counter() - start,
        )
        if out_dir is not None:
            self._write(Path(out_dir), result, budget)
        return result

    def _with_reply(self, i: int) -> list[Any]:
        from torchtune.data import Message

        return [*self._messages(self._samples[i]), Message(role="assistant", content="")]

    @staticmethod
    def _all_max(value: int, world_size: int, device: torch.device) -> int:
        if world_size == 1:
            return value
        t = torch.tensor([value], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    @staticmethod
    def _all_finished(device: torch.device) -> Any:
        flag = torch.zeros(1, dtype=torch.int32, device=device)

        def all_finished(finished: bool) -> bool:
            flag.fill_(int(finished))
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
            return bool(flag.item())

        return all_finished

    def _record(
        self, sample: Sample, transform: Any, ids: list[int], budget: int, seconds: float
    ) -> dict[str, Any]:
        response = Response(
            status="ok",
            content=transform.decode(ids),
            finish_reason="length" if len(ids) >= budget else "stop",
            usage={"completion_tokens": len(ids)},
            latency_s=seconds,
            attempts=1,
            elapsed_s=seconds,
        )
        return {"id": sample.id, **asdict(response), "score": self.task.score(sample, response)}

    def identity(self, step: int, budget: int) -> dict[str, Any]:
        """The evaluator's ``run.json`` identity of a validation (what ``--resume`` checks).

        Args:
            step (int): the validation's step.
            budget (int): its ``max_new_tokens``.

        Returns:
            dict[str, Any]: the identity (model name ``step_<step>``, greedy, no seed).
        """
        return {
            "task": self.task.name,
            "task_options": self.task.options(),
            "model": f"step_{step}",
            "structured": False,
            "bounded_schema": None,
            "dataset_sha256": self.split.sha256(),
            "temperature": 0.0,
            "seed": None,
            "max_tokens": budget,
        }

    def _write(self, out: Path, result: ValidationResult, budget: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records)
        atomic_write_text(out / "predictions.jsonl", lines)
        run = {"identity": self.identity(result.step, budget), "updated": timestamp()}
        atomic_write_text(out / "run.json", json.dumps(run, indent=2) + "\n")
        metrics = {
            "step": result.step,
            "task": self.task.name,
            "data": self.data,
            "limit": len(self.ids),
            "max_new_tokens": budget,
            "seconds": result.seconds,
            **result.summary,
        }
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")

    def headline(self, metrics: Mapping[str, Any], name: Optional[str] = None) -> Optional[float]:
        """A metric's value (the task's headline metric if ``name`` is None).

        Args:
            metrics (Mapping[str, Any]): from :meth:`run`.
            name (Optional[str]): a key of the task's metrics.

        Returns:
            Optional[float]: the value, None if the task produced none (no scored row).

        Raises:
            ConfigError: if the task has no metric of that name.
        """
        key = name or self.task.headline_metric
        if key not in metrics:
            valid = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) or v is None)
            raise ConfigError(
                f"task {self.task.name!r} has no metric {key!r}; its metrics: {', '.join(valid)}"
            )
        value = metrics[key]
        return None if value is None else float(value)


class ValidationRunner:
    """A recipe's validation schedule, metric log, keep-best and early stopping in one place.

    Built from the ``dataset_val``, ``run_val_every_n_steps``, ``keep_best`` and
    ``early_stopping`` config keys. :meth:`run` validates, logs the scalar metrics (``val/<name>``
    to the metric logger, ``kind: val`` to ``metrics.jsonl``), asks the recipe to save the
    weights as ``best/`` when the tracked metric improves, and redraws the plots.

    Args:
        cfg_val (Any): ``dataset_val`` (None: no validation; then nothing is ever due).
        every_n_steps (Optional[int]): ``run_val_every_n_steps`` (None: after every epoch).
        cfg_keep_best (Any): ``keep_best`` (``metric``, ``mode``) or None.
        cfg_early_stopping (Any): ``early_stopping`` (``patience``, ``min_delta``) or None.
        output_dir (Path): the run's output directory (``validation/``, ``plots/``).

    Raises:
        ConfigError: see :func:`setup_validation`, and for ``run_val_every_n_steps`` < 1.
    """

    def __init__(
        self,
        cfg_val: Any,
        every_n_steps: Optional[int],
        cfg_keep_best: Any,
        cfg_early_stopping: Any,
        output_dir: Path,
    ) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(f"run_val_every_n_steps must be >= 1 or null, got {every_n_steps}")
        self.validation, self.tracker, self.metric = setup_validation(
            cfg_val, cfg_keep_best, cfg_early_stopping
        )
        self.every_n_steps = every_n_steps
        self.keep_best = bool(cfg_keep_best) and self.validation is not None
        self.output_dir = Path(output_dir)
        self.last_step: Optional[int] = None

    @property
    def enabled(self) -> bool:
        """bool: a validation is configured."""
        return self.validation is not None

    @property
    def should_stop(self) -> bool:
        """bool: early stopping asks training to end."""
        return self.tracker.should_stop

    def due(self, step: int, end_of_epoch: bool, end_of_training: bool) -> bool:
        """Whether to validate after this optimizer step.

        Args:
            step (int): the step just taken.
            end_of_epoch (bool): it ended an epoch.
            end_of_training (bool): it is the last step of the run (always validated).

        Returns:
            bool: validate now.
        """
        if self.validation is None or self.last_step == step:
            return False
        if end_of_training:
            return True
        if self.every_n_steps is None:
            return end_of_epoch
        return step % self.every_n_steps == 0

    def run(
        self,
        model: nn.Module,
        transform: Any,
        *,
        step: int,
        epoch: int,
        device: torch.device,
        dtype: torch.dtype,
        metrics: Any,
        save_best: Any,
        world_size: int = 1,
        rank: int = 0,
    ) -> ValidationResult:
        """Validate, log, keep the best weights and update the early-stopping count.

        Args:
            model (nn.Module): the model being trained.
            transform (Any): its model transform.
            step (int): the current optimizer step.
            epoch (int): the current epoch.
            device (torch.device): training device.
            dtype (torch.dtype): training dtype.
            metrics (Any): the run's :class:`~torchtune_ext.training.MetricsLog` (None off rank 0).
            save_best (Callable[[dict[str, Any]], None]): called (on every rank) with the
                ``best.json`` record when this validation is the new best and keep-best is on.
            world_size (int): processes sharing the model.
            rank (int): this process's rank (rank 0 writes).

        Returns:
            ValidationResult: the result.
        """
        from torchtune import utils

        from torchtune_ext.training.run_log import plot_metrics

        assert self.validation is not None
        result = self.validation.run(
            model,
            transform,
            step=step,
            device=device,
            dtype=dtype,
            out_dir=self.output_dir / "validation" / f"step_{step}" if rank == 0 else None,
            world_size=world_size,
            rank=rank,
        )
        value = self.validation.headline(result.metrics, self.metric)
        improved = self.tracker.update(step, value)
        self.last_step = step
        log = utils.get_logger("INFO")
        note = " - new best" if improved else ""
        utils.log_rank_zero(
            log, f"validation at step {step}: {self.metric}={value} ({result.seconds:.1f}s){note}"
        )
        if metrics is not None:
            metrics.log("val", step, result.scalars(), best=improved, seconds=result.seconds)
        if improved and self.keep_best:
            save_best(
                {
                    "step": step,
                    "epoch": epoch,
                    "metric": self.metric,
                    "mode": self.tracker.mode,
                    "value": value,
                    "validation": f"validation/step_{step}",
                    "metrics": {k: v for k, v in result.metrics.items() if not isinstance(v, dict)},
                }
            )
        if self.should_stop:
            utils.log_rank_zero(
                log,
                f"early stopping at step {step}: no {self.metric} improvement above {self.tracker.min_delta} "
                f"in {self.tracker.patience} validation(s); best {self.tracker.best_value} at step "
                f"{self.tracker.best_step}",
            )
        if metrics is not None:
            plot_metrics(metrics.records(), self.output_dir / "plots", self.metric)
        return result

    def state_dict(self) -> dict[str, Any]:
        """Keep-best bookkeeping and the last validated step, for the resume state.

        Returns:
            dict[str, Any]: plain values.
        """
        return {"tracker": self.tracker.state_dict(), "last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Args:
            state (dict[str, Any]): from :meth:`state_dict`.
        """
        self.tracker.load_state_dict(state["tracker"])
        self.last_step = state["last_step"]


def setup_validation(
    cfg_val: Any, cfg_keep_best: Any, cfg_early_stopping: Any
) -> tuple[Optional[TaskValidation], BestTracker, Optional[str]]:
    """Build a recipe's validation and its keep-best/early-stopping bookkeeping from the config.

    Args:
        cfg_val (Any): the ``dataset_val`` section (None: no validation).
        cfg_keep_best (Any): the ``keep_best`` section (``metric``, ``mode``) or None.
        cfg_early_stopping (Any): the ``early_stopping`` section (``patience``, ``min_delta``) or None.

    Returns:
        tuple[Optional[TaskValidation], BestTracker, Optional[str]]: the validation, the
        tracker and the name of the metric that ranks validations (None without validation).

    Raises:
        ConfigError: if keep-best or early stopping has no validation to rank by, a setting is
            out of range, or the task has no such metric (checked on an empty aggregate).
    """
    from torchtune import config

    validation = config.instantiate(cfg_val)
    if validation is None and (cfg_keep_best or cfg_early_stopping):
        raise ConfigError("keep_best and early_stopping need dataset_val (a validation to rank by)")
    try:
        tracker = BestTracker(
            mode=cfg_keep_best.mode if cfg_keep_best else "max",
            patience=cfg_early_stopping.patience if cfg_early_stopping else None,
            min_delta=cfg_early_stopping.min_delta if cfg_early_stopping else 0.0,
        )
    except ValueError as e:
        raise ConfigError(f"keep_best/early_stopping: {e}") from None
    if validation is None:
        return None, tracker, None
    metric = (cfg_keep_best.metric if cfg_keep_best else None) or validation.task.headline_metric
    try:
        validation.headline(validation.task.aggregate([]), metric)
    except ConfigError as e:
        raise ConfigError(f"keep_best.metric: {e}") from None
    return validation, tracker, metric
