"""Full fine-tuning of Llama 3.2 Vision on N devices (FSDP2), validated by the task's own metric.

torchtune 0.6.1's ``full_finetune_distributed`` recipe (data parallel with FSDP2 sharding),
with what our single-device recipes add:

* validation every ``run_val_every_n_steps`` steps (``dataset_val``), the rows split across
  ranks, every rank stepping in lockstep; keep-best (``best/``) and early stopping;
* ``LinearCrossEntropyLoss`` wired (``loss.set_model_output(model)``);
* loss, lr, tokens/s, samples/s and peak memory logged by rank 0 (metric logger,
  ``metrics.jsonl``, ``plots/``);
* a strict config (``RECIPE_KEYS``);
* exact resume from the last save point (``resume_from_checkpoint=True``), atomic checkpoints,
  a clean stop on SIGTERM/Ctrl-C;
* CPU (gloo) and GPU (NCCL) alike: no CUDA-only call on CPU, so two CPU processes run it.

Run it with torchtune's CLI, from any directory::

    tune run --nproc_per_node 2 torchtune_ext/recipes/full_finetune_vision_distributed.py \\
        --config configs/tiny/full_w2_distributed.yaml
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Optional, Union
from warnings import warn

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.distributed import destroy_process_group, init_device_mesh, init_process_group
from torch.distributed._tensor import DTensor
from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
from torch.optim import Optimizer
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler
from torchtune import config, modules, training, utils
from torchtune.config._utils import _get_component_from_path
from torchtune.datasets import ConcatDataset
from torchtune.recipe_interfaces import FTRecipeInterface
from torchtune.training import DummyProfiler
from tqdm import tqdm

from torchtune_ext.training import (
    COMMON_KEYS,
    ConfigError,
    GracefulStop,
    Key,
    MetricsLog,
    ValidationRunner,
    WeightsWriter,
    check_resumable,
    clear_previous_run,
    get_rng_state,
    load_resume_state,
    memory_stats,
    plot_metrics,
    save_resume_state,
    set_rng_state,
    strict_config,
    trainable_state_dict,
)

log = utils.get_logger("DEBUG")

#: Every config key this recipe reads, with its type and default.
RECIPE_KEYS: dict[str, Key] = {
    **COMMON_KEYS,
    "fsdp_cpu_offload": Key(bool, False, "keep parameters, gradients and optimizer state on CPU"),
    "fsdp_reshard_after_forward": Key(bool, True, "free gathered parameters after forward (less memory)"),
    "custom_sharded_layers": Key(
        Optional[list], None, "more modules to shard, e.g. [decoder.tok_embeddings]"
    ),
}


class FullFinetuneVisionRecipeDistributed(FTRecipeInterface):
    """Full fine-tuning with FSDP2, with validation, keep-best, early stopping and exact resume.

    Args:
        cfg (DictConfig): the config, checked by :func:`torchtune_ext.training.strict_config`.

    Raises:
        ValueError: if ``dtype`` is fp16.
        RuntimeError: for activation offloading off CUDA or without activation checkpointing.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self._device = utils.get_device(device=cfg.device)
        self._dtype = training.get_dtype(cfg.dtype, device=self._device)
        if self._dtype == torch.float16:
            raise ValueError(
                "full fp16 training is not supported with this recipe. Please use bf16 or fp32 instead."
            )

        self.fsdp_cpu_offload = cfg.fsdp_cpu_offload
        self.distributed_backend = training.get_distributed_backend(
            self._device.type, offload_ops_to_cpu=self.fsdp_cpu_offload
        )
        init_process_group(self.distributed_backend)
        self.world_size, self.rank = utils.get_world_size_and_rank()
        self._is_rank_zero = self.rank == 0

        self._output_dir = Path(cfg.output_dir)
        self._log_every_n_steps = cfg.log_every_n_steps
        self._log_peak_memory_stats = cfg.log_peak_memory_stats
        self._resume_from_checkpoint = cfg.resume_from_checkpoint
        self._save_every_n_steps = cfg.save_every_n_steps
        self._gradient_accumulation_steps = cfg.gradient_accumulation_steps
        self._clip_grad_norm = cfg.clip_grad_norm
        self._batch_size = cfg.batch_size

        self._enable_activation_checkpointing = cfg.enable_activation_checkpointing
        self._enable_activation_offloading = cfg.enable_activation_offloading
        if self._enable_activation_offloading:
            if self._device.type != "cuda":
                raise RuntimeError("enable_activation_offloading should only be True when training on CUDA")
            if not self._enable_activation_checkpointing:
                raise RuntimeError(
                    "enable_activation_offloading should only be True when enable_activation_checkpointing is True"
                )

        self.seed = training.set_seed(seed=cfg.seed, debug_mode=cfg.cudnn_deterministic_mode)
        self.epochs_run = 0
        self.total_epochs = cfg.epochs
        self.max_steps_per_epoch = cfg.max_steps_per_epoch
        self.global_step = 0
        self.steps_in_epoch = 0
        self.stopped_early = False

    def setup(self, cfg: DictConfig) -> None:
        """Build validation, the metric log (rank 0), the sharded model, tokenizer, optimizer, loss,
        data and schedule; on ``resume_from_checkpoint``, continue from the resume state.

        Args:
            cfg (DictConfig): the checked config.
        """
        if self.fsdp_cpu_offload:
            training.set_torch_num_threads()
        self._val = ValidationRunner(
            cfg.dataset_val, cfg.run_val_every_n_steps, cfg.keep_best, cfg.early_stopping, self._output_dir
        )
        resume = load_resume_state(self._output_dir) if self._resume_from_checkpoint else None
        if resume is not None:
            changed = check_resumable(resume["config"], cfg)
            for key in changed if self._is_rank_zero else []:
                log.warning(
                    f"resume_from_checkpoint: {key!r} differs from the saved run; using this run's value"
                )
        elif self._is_rank_zero:
            clear_previous_run(self._output_dir, Path(cfg.checkpointer.output_dir))
        torch.distributed.barrier()

        self._metrics = None
        if self._is_rank_zero:
            self._metric_logger = config.instantiate(cfg.metric_logger)
            self._metric_logger.log_config(cfg)
            self._metrics = MetricsLog(self._output_dir / "metrics.jsonl", self._metric_logger)

        self._weights = WeightsWriter(cfg.checkpointer)
        base_state = self._weights.load_checkpoint()[training.MODEL_KEY]
        if resume is not None:  # the trained parameters replace their base values
            base_state.update(resume["model"])
        self._compile = cfg.compile
        # The loss comes before the model: LinearCrossEntropyLoss takes over the output
        # projection, which must happen before FSDP shards it.
        self._loss_fn = config.instantiate(cfg.loss)
        if self._compile:
            training.compile_loss(self._loss_fn, verbose=self._is_rank_zero)
        self._model = self._setup_model(
            cfg_model=cfg.model,
            enable_activation_checkpointing=self._enable_activation_checkpointing,
            enable_activation_offloading=self._enable_activation_offloading,
            fsdp_cpu_offload=self.fsdp_cpu_offload,
            reshard_after_forward=cfg.fsdp_reshard_after_forward,
            model_state_dict=base_state,
            custom_sharded_layers=cfg.custom_sharded_layers,
        )
        del base_state
        self._tokenizer = config.instantiate(cfg.tokenizer)

        self._optimizer = self._setup_optimizer(
            cfg_optimizer=cfg.optimizer, opt_state_dict=resume["optimizer"] if resume else None
        )

        if self._loss_fn.__class__.__name__ == "CEWithChunkedOutputLoss":
            self._model.set_num_output_chunks(self._loss_fn.num_output_chunks)
        utils.log_rank_zero(log, "Loss is initialized.")

        self._dataloader = self._setup_data(
            cfg_dataset=cfg.dataset, shuffle=cfg.shuffle, batch_size=cfg.batch_size, collate_fn=cfg.collate_fn
        )
        self._steps_per_epoch = len(self._dataloader) // self._gradient_accumulation_steps
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < self._steps_per_epoch:
            self._steps_per_epoch = self.max_steps_per_epoch

        self._rng_to_restore = None
        if resume is not None:
            self._restore_progress(resume)

        self._lr_scheduler = self._setup_lr_scheduler(
            cfg_lr_scheduler=cfg.lr_scheduler,
            num_training_steps=self.total_epochs * self._steps_per_epoch,
            last_epoch=self.global_step - 1,
        )
        self._profiler = self._setup_profiler(cfg.profiler)
        self.ignore_labels_cache = torch.full(
            (cfg.batch_size, 1), self._loss_fn.ignore_index, device=self._device
        )
        self._config = OmegaConf.to_container(cfg, resolve=True)

    def _restore_progress(self, resume: dict[str, Any]) -> None:
        """Step counters, this rank's data position and generators, keep-best bookkeeping."""
        if self.seed != resume["seed"]:
            warn(
                f"seed {self.seed} differs from the saved run's; using the saved {resume['seed']}",
                stacklevel=2,
            )
            self.seed = resume["seed"]
        if len(resume["rng"]) != self.world_size:
            raise ConfigError(
                f"resume_from_checkpoint: the saved run had {len(resume['rng'])} processes, this one {self.world_size}"
            )
        self.epochs_run = resume["epochs_run"]
        self.global_step = resume["global_step"]
        self.steps_in_epoch = resume["steps_in_epoch"]
        self.stopped_early = resume["stopped_early"]
        self._val.load_state_dict(resume["validation"])
        if resume["dataloader"] is not None:
            self._dataloader.load_state_dict(resume["dataloader"][self.rank])
        self._rng_to_restore = resume["rng"][self.rank]
        if self.steps_in_epoch == 0:
            set_rng_state(self._rng_to_restore, self._device)
            self._rng_to_restore = None
        if self._metrics is not None:
            self._metrics.truncate(self.global_step)
        utils.log_rank_zero(log, f"Resuming at epoch {self.epochs_run}, step {self.global_step}")

    def _setup_lr_scheduler(
        self, cfg_lr_scheduler: Optional[DictConfig], num_training_steps: int, last_epoch: int
    ) -> Optional[Any]:
        """The learning-rate schedule, positioned at ``last_epoch`` (the resumed step - 1)."""
        if cfg_lr_scheduler is None:
            utils.log_rank_zero(log, "No learning rate scheduler configured. Using constant learning rate.")
            return None
        return config.instantiate(
            cfg_lr_scheduler, self._optimizer, num_training_steps=num_training_steps, last_epoch=last_epoch
        )

    def _setup_profiler(
        self, cfg_profiler: Optional[DictConfig] = None
    ) -> Union[torch.profiler.profile, DummyProfiler]:
        """The torch profiler of the ``profiler`` section (disabled if absent), as in the stock recipe."""
        if cfg_profiler is None:
            cfg_profiler = DictConfig({"enabled": False})
        if cfg_profiler.get("_component_", None) is None:
            cfg_profiler["_component_"] = "torchtune.training.setup_torch_profiler"
        profiler, profiler_cfg = config.instantiate(cfg_profiler)
        utils.log_rank_zero(log, f" Profiler config after instantiation: {profiler_cfg}")
        return profiler

    def _setup_model(
        self,
        cfg_model: DictConfig,
        enable_activation_checkpointing: bool,
        enable_activation_offloading: bool,
        fsdp_cpu_offload: bool,
        reshard_after_forward: bool,
        model_state_dict: dict[str, Any],
        custom_sharded_layers: Optional[list[str]] = None,
    ) -> nn.Module:
        """Build the model on the meta device, shard it with FSDP2, then load the full state dict.

        Every rank reads the checkpoint (memory-mapped) and keeps only its shards.
        """
        utils.log_rank_zero(
            log, "Distributed training is enabled. Instantiating model and loading checkpoint ..."
        )
        init_start = time.perf_counter()
        with training.set_default_dtype(self._dtype), torch.device("meta"):
            model = config.instantiate(cfg_model)
        if hasattr(self._loss_fn, "set_model_output"):
            # LinearCrossEntropyLoss: the model returns hidden states, the loss projects them.
            self._loss_fn.set_model_output(model)
        if self._compile:
            training.compile_model(model, verbose=self._is_rank_zero)
        device_mesh = init_device_mesh(
            self._device.type, mesh_shape=(self.world_size,), mesh_dim_names=("dp",)
        )
        self.dp_size = device_mesh["dp"].size()
        self.dp_rank = device_mesh["dp"].get_local_rank()
        if enable_activation_checkpointing:
            training.set_activation_checkpointing(
                model, auto_wrap_policy={modules.TransformerSelfAttentionLayer}
            )
        if self.world_size > 1:
            # torchtune's shard_model, except that the root keeps its parameters gathered from
            # forward to backward (FSDP2's own default): LinearCrossEntropyLoss uses the output
            # projection's weight after the forward.
            fsdp_kwargs: dict[str, Any] = {
                "reshard_after_forward": reshard_after_forward,
                "mesh": device_mesh["dp"],
            }
            if fsdp_cpu_offload:
                fsdp_kwargs["offload_policy"] = CPUOffloadPolicy()
            for name, module in reversed(list(model.named_modules())):
                if training.get_shard_conditions(name, module, names_to_match=custom_sharded_layers):
                    fully_shard(module, **fsdp_kwargs)
            fully_shard(model, **{**fsdp_kwargs, "reshard_after_forward": False})
        with training.set_default_dtype(self._dtype), self._device:
            for m in model.modules():
                if hasattr(m, "rope_init"):  # RoPE caches are not in the state dict
                    m.rope_init()
        self._load_base_weights(model, model_state_dict, fsdp_cpu_offload)
        self.activations_handling_ctx = training.get_act_offloading_ctx_manager(
            model, enable_activation_offloading
        )
        training.validate_no_params_on_meta_device(model)
        utils.log_rank_zero(
            log,
            f"Instantiating model and loading checkpoint took {time.perf_counter() - init_start:.2f} secs",
        )
        if self._is_rank_zero and self._device.type == "cuda":
            training.log_memory_stats(training.get_memory_stats(device=self._device))
        torch.distributed.barrier()
        return model

    def _load_base_weights(self, model: nn.Module, state_dict: dict[str, Any], cpu_offload: bool) -> None:
        """Shard the full state dict into the model (every key must match)."""
        training.load_from_full_model_state_dict(
            model, state_dict, self._device, strict=True, cpu_offload=cpu_offload
        )

    def _setup_optimizer(
        self, cfg_optimizer: DictConfig, opt_state_dict: Optional[dict[str, Any]] = None
    ) -> Optimizer:
        """The optimizer over the sharded parameters, with a resumed (full) state if any."""
        optimizer = config.instantiate(cfg_optimizer, self._model.parameters())
        if opt_state_dict:
            training.load_from_full_optimizer_state_dict(self._model, optimizer, opt_state_dict, self._device)
        utils.log_rank_zero(log, "Optimizer is initialized.")
        return optimizer

    def _setup_data(
        self, cfg_dataset: DictConfig, shuffle: bool, batch_size: int, collate_fn: str
    ) -> StatefulDataLoader:
        """Map-style dataset(s), a per-rank stateful sampler and dataloader (the stock recipe's)."""
        if isinstance(cfg_dataset, ListConfig):
            ds = ConcatDataset(datasets=[config.instantiate(c, self._tokenizer) for c in cfg_dataset])
        else:
            ds = config.instantiate(cfg_dataset, self._tokenizer)
        if "left_pad_sequence" in collate_fn:
            raise RuntimeError("left_pad_sequence collator is only for inference.")
        collate = _get_component_from_path(collate_fn)
        sampler = StatefulDistributedSampler(
            ds, num_replicas=self.dp_size, rank=self.dp_rank, shuffle=shuffle
        )
        return StatefulDataLoader(
            dataset=ds,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=partial(
                collate, padding_idx=self._tokenizer.pad_id, ignore_idx=self._loss_fn.ignore_index
            ),
            drop_last=True,
        )

    def _full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full model state dict on rank 0's CPU (empty elsewhere); every rank must call it."""
        return training.gather_cpu_state_dict(self._model, self._is_rank_zero, device=self._device)

    def save_checkpoint(self, epoch: int) -> None:
        """Publish ``epoch_<epoch>/`` (rank 0) and save the resume state.

        Args:
            epoch (int): the epoch just finished (or stopped).
        """
        start = time.perf_counter()
        state = self._full_state_dict()
        if self._is_rank_zero:
            self._weights.write({training.MODEL_KEY: state}, f"epoch_{epoch}", epoch=epoch)
        self._save_resume_state(state)
        utils.log_rank_zero(log, f"Checkpoint saved in {time.perf_counter() - start:.2f} seconds.")

    def _save_resume_state(self, full_state: Optional[dict[str, torch.Tensor]] = None) -> None:
        """Everything :meth:`setup` needs to continue exactly from this optimizer step (collective)."""
        state = self._full_state_dict() if full_state is None else full_state
        optimizer = training.get_full_optimizer_state_dict(
            self._model, self._optimizer, self._is_rank_zero, device=self._device
        )
        per_rank: list[Any] = [None] * self.world_size
        mine = (self._dataloader.state_dict() if self.steps_in_epoch else None, get_rng_state(self._device))
        torch.distributed.all_gather_object(per_rank, mine)
        if self._is_rank_zero:
            save_resume_state(
                self._output_dir,
                {
                    "config": self._config,
                    "seed": self.seed,
                    "epochs_run": self.epochs_run,
                    "global_step": self.global_step,
                    "steps_in_epoch": self.steps_in_epoch,
                    "stopped_early": self.stopped_early,
                    "model": trainable_state_dict(self._model, state),
                    "optimizer": optimizer,
                    "dataloader": [p[0] for p in per_rank] if self.steps_in_epoch else None,
                    "rng": [p[1] for p in per_rank],
                    "validation": self._val.state_dict(),
                },
            )
        torch.distributed.barrier()

    def validate(self, epoch: int) -> None:
        """Validate on every rank; keep the weights as ``best/`` (rank 0) when they are the best."""

        def save_best(record: dict[str, Any]) -> None:
            state = self._full_state_dict()
            if self._is_rank_zero:
                self._weights.write(
                    {training.MODEL_KEY: state}, "best", epoch=epoch, extra={"best.json": record}
                )
            torch.distributed.barrier()

        self._val.run(
            self._model,
            self._tokenizer,
            step=self.global_step,
            epoch=epoch,
            device=self._device,
            dtype=self._dtype,
            metrics=self._metrics,
            save_best=save_best,
            world_size=self.world_size,
            rank=self.rank,
        )
        self.stopped_early = self._val.should_stop

    def train(self) -> int:
        """The stock distributed training loop, plus validation, early stopping, save points, clean stops.

        Returns:
            int: 0 when training finished (or stopped early), 128 + signal number after a
            requested stop (the resume state is saved).
        """
        if self._device.type == "cuda":  # empty_cache and peak-memory reset exist on CUDA only
            training.cleanup_before_training()
        self._optimizer.zero_grad()
        if self.epochs_run >= self.total_epochs or self.stopped_early:
            utils.log_rank_zero(log, f"Nothing to do: the run already finished at step {self.global_step}.")
            return 0

        ga = self._gradient_accumulation_steps
        t0 = time.perf_counter()
        running_loss, num_tokens = 0, 0
        stop = GracefulStop()
        self._profiler.start()
        with stop.installed():
            for curr_epoch in range(self.epochs_run, self.total_epochs):
                pbar = tqdm(
                    total=self._steps_per_epoch, initial=self.steps_in_epoch, disable=not self._is_rank_zero
                )
                self._dataloader.sampler.set_epoch(curr_epoch)
                batches = iter(self._dataloader)
                if self._rng_to_restore is not None:
                    set_rng_state(self._rng_to_restore, self._device)
                    self._rng_to_restore = None
                micro = 0
                for batch in batches:
                    if self.steps_in_epoch >= self._steps_per_epoch:
                        break
                    utils.batch_to_device(batch, self._device)
                    current_num_tokens = (batch["labels"] != self._loss_fn.ignore_index).sum()
                    num_tokens += current_num_tokens
                    labels = batch.pop("labels")
                    with self.activations_handling_ctx:
                        logits = self._model(**batch)
                    # Shift labels to compute loss: labels[..., 1:] against logits[..., :-1, :].
                    labels = torch.hstack((labels[..., 1:], self.ignore_labels_cache[: labels.shape[0]]))
                    if not isinstance(logits, list):
                        labels = labels.reshape(-1)
                        logits = logits.reshape(-1, logits.size(-1))
                    current_loss = self._loss_fn(logits, labels) * current_num_tokens
                    del logits
                    running_loss += current_loss
                    current_loss.backward()
                    micro += 1
                    self._profiler.step()
                    if micro % ga:
                        continue

                    # Normalize by the tokens of all ranks; world_size undoes FSDP2's gradient mean.
                    torch.distributed.all_reduce(num_tokens)
                    torch.distributed.all_reduce(running_loss)
                    training.scale_grads(self._model, self.world_size / num_tokens)
                    if self._clip_grad_norm is not None:
                        grad_norm = torch.nn.utils.clip_grad_norm_(
                            self._model.parameters(), max_norm=float(self._clip_grad_norm)
                        )
                        if isinstance(grad_norm, DTensor):
                            grad_norm = grad_norm.full_tensor()
                    self._optimizer.step()
                    self._optimizer.zero_grad(set_to_none=True)
                    if self._lr_scheduler is not None:
                        self._lr_scheduler.step()
                    self.global_step += 1
                    self.steps_in_epoch += 1

                    loss_to_log = running_loss.item() / num_tokens
                    pbar.update(1)
                    pbar.set_description(f"{curr_epoch + 1}|{self.global_step}|Loss: {loss_to_log}")
                    if self.global_step % self._log_every_n_steps == 0 and self._is_rank_zero:
                        time_per_step = time.perf_counter() - t0
                        log_dict = {
                            "loss": loss_to_log,
                            "lr": self._optimizer.param_groups[0]["lr"],
                            "tokens_per_second_per_gpu": num_tokens / (time_per_step * self.world_size),
                            "samples_per_second": self._batch_size * ga * self.world_size / time_per_step,
                        }
                        if self._log_peak_memory_stats:
                            log_dict.update(memory_stats(self._device))
                        if self._clip_grad_norm is not None:
                            log_dict.update({"grad_norm": grad_norm})
                        self._metrics.log("train", self.global_step, log_dict, epoch=curr_epoch)
                    running_loss, num_tokens = 0, 0

                    end_of_epoch = self.steps_in_epoch >= self._steps_per_epoch
                    last = end_of_epoch and curr_epoch + 1 == self.total_epochs
                    if self._val.due(self.global_step, end_of_epoch, last):
                        self.validate(curr_epoch)
                    if self.stopped_early:
                        self.epochs_run = curr_epoch + 1
                        self.steps_in_epoch = 0
                        self.save_checkpoint(epoch=curr_epoch)
                        break
                    if stop.requested(self.world_size, self._device) and not end_of_epoch:
                        self._save_resume_state()
                        utils.log_rank_zero(
                            log,
                            f"Stopped by signal {stop.signal} at step {self.global_step}; the same command "
                            "with resume_from_checkpoint=True continues from here.",
                        )
                        self._profiler.stop()
                        return stop.exit_status
                    if (
                        self._save_every_n_steps
                        and self.global_step % self._save_every_n_steps == 0
                        and not end_of_epoch
                    ):
                        self._save_resume_state()
                    t0 = time.perf_counter()

                if self.stopped_early:
                    break
                self.epochs_run += 1
                self.steps_in_epoch = 0
                self.save_checkpoint(epoch=curr_epoch)
                if self._metrics is not None:
                    plot_metrics(self._metrics.records(), self._output_dir / "plots", self._val.metric)
                if stop.requested(self.world_size, self._device) and self.epochs_run < self.total_epochs:
                    utils.log_rank_zero(
                        log,
                        f"Stopped by signal {stop.signal} after epoch {curr_epoch}; resume_from_checkpoint=True continues.",
                    )
                    self._profiler.stop()
                    return stop.exit_status
        self._profiler.stop()
        if self._metrics is not None:
            plot_metrics(self._metrics.records(), self._output_dir / "plots", self._val.metric)
        return 0

    def cleanup(self) -> None:
        """Close the metric logger (rank 0) and the process group."""
        if self._is_rank_zero:
            self._metric_logger.close()
        destroy_process_group()


@config.parse
def recipe_main(cfg: DictConfig) -> int:
    """Entry point: check the config, set up, train.

    Args:
        cfg (DictConfig): the YAML config merged with the command-line overrides.

    Returns:
        int: the exit status (see :meth:`FullFinetuneVisionRecipeDistributed.train`).
    """
    cfg = strict_config(cfg, RECIPE_KEYS)
    rank_zero = os.environ.get("RANK", "0") == "0"
    if rank_zero:
        config.log_config(recipe_name="FullFinetuneVisionRecipeDistributed", cfg=cfg)
    try:
        recipe = FullFinetuneVisionRecipeDistributed(cfg=cfg)
        recipe.setup(cfg=cfg)
    except ConfigError as e:
        if rank_zero:
            print(f"error: config: {e}", file=sys.stderr, flush=True)
        return 2
    status = recipe.train()
    recipe.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(recipe_main())
