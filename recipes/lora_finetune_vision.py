"""LoRA and QLoRA fine-tuning of Llama 3.2 Vision on one device, validated by the task's own metric.

torchtune 0.6.1's ``lora_finetune_single_device`` recipe (adapters trained, base frozen; NF4
base weights when the model builder quantizes them), with:

* validation every ``run_val_every_n_steps`` steps (``dataset_val``: greedy answers on a
  held-out split, scored by the task's evaluator code; see ``torchtune_ext.training.validation``);
* keep-best (``keep_best``: the best validated weights, adapters merged, in ``best/``, HF
  format, servable as is) and early stopping (``early_stopping``);
* ``LinearCrossEntropyLoss`` wired (``loss.set_model_output(model)``);
* loss, lr, tokens/s, samples/s and peak memory (CUDA stats on GPU, RSS on CPU) logged to the
  metric logger and ``output_dir/metrics.jsonl``, drawn in ``output_dir/plots/``;
* a strict config: unknown, misspelt or wrongly typed keys stop the run before anything is
  built (``RECIPE_KEYS`` lists every key it reads);
* exact resume: ``resume_from_checkpoint=True`` on the same command continues from the last
  save point (end of epoch, every ``save_every_n_steps``, or a SIGTERM/Ctrl-C); checkpoints are
  written atomically;
* CPU and GPU alike.

Run it with torchtune's CLI, from any directory::

    tune run torchtune_ext/recipes/lora_finetune_vision.py --config configs/tiny/lora_w2_val.yaml
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Optional, Union
from warnings import warn

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torch.optim import Optimizer
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler
from torchtune import config, modules, training, utils
from torchtune.config._utils import _get_component_from_path
from torchtune.datasets import ConcatDataset
from torchtune.modules.peft import (
    get_adapter_params,
    get_adapter_state_dict,
    get_lora_module_names,
    get_merged_lora_ckpt,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
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
)

log = utils.get_logger("DEBUG")

#: Every config key this recipe reads, with its type and default.
RECIPE_KEYS: dict[str, Key] = {
    **COMMON_KEYS,
    "save_adapter_weights_only": Key(
        bool, False, "epoch_<k>/ gets the adapter only (best/ is always merged)"
    ),
}


class LoRAFinetuneVisionRecipe(FTRecipeInterface):
    """LoRA/QLoRA fine-tuning on one device, with validation, keep-best, early stopping and exact resume.

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
            raise ValueError("fp16 precision is not supported in this recipe. Please use fp32 or bf16.")

        self._output_dir = Path(cfg.output_dir)
        self._log_every_n_steps = cfg.log_every_n_steps
        self._log_peak_memory_stats = cfg.log_peak_memory_stats

        self._resume_from_checkpoint = cfg.resume_from_checkpoint
        self._save_every_n_steps = cfg.save_every_n_steps
        self._gradient_accumulation_steps = cfg.gradient_accumulation_steps
        self._clip_grad_norm = cfg.clip_grad_norm
        self._save_adapter_weights_only = cfg.save_adapter_weights_only

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

        self._batch_size = cfg.batch_size

    def load_checkpoint(self, cfg_checkpointer: DictConfig) -> dict[str, Any]:
        """Read the base weights through the config's checkpointer.

        Args:
            cfg_checkpointer (DictConfig): the ``checkpointer`` section.

        Returns:
            dict[str, Any]: torchtune's checkpoint dict (``model``).
        """
        self._weights = WeightsWriter(cfg_checkpointer)
        return self._weights.load_checkpoint()

    def setup(self, cfg: DictConfig) -> None:
        """Build validation, the metric log, the model, tokenizer, optimizer, loss, data and schedule.

        On ``resume_from_checkpoint`` the trained weights, optimizer, data position, step
        counters, random generators and keep-best bookkeeping come from the resume state.

        Args:
            cfg (DictConfig): the checked config.
        """
        # What can be wrong in the config is checked first, before any weight is read.
        self._val = ValidationRunner(
            cfg.dataset_val, cfg.run_val_every_n_steps, cfg.keep_best, cfg.early_stopping, self._output_dir
        )
        resume = load_resume_state(self._output_dir) if self._resume_from_checkpoint else None
        if resume is not None:
            for key in check_resumable(resume["config"], cfg):
                log.warning(
                    f"resume_from_checkpoint: {key!r} differs from the saved run; using this run's value"
                )
        else:
            clear_previous_run(self._output_dir, Path(cfg.checkpointer.output_dir))

        self._metric_logger = config.instantiate(cfg.metric_logger)
        self._metric_logger.log_config(cfg)
        self._metrics = MetricsLog(self._output_dir / "metrics.jsonl", self._metric_logger)

        ckpt_dict = self.load_checkpoint(cfg.checkpointer)
        self._compile = cfg.compile
        self._model = self._setup_model(
            cfg_model=cfg.model,
            enable_activation_checkpointing=self._enable_activation_checkpointing,
            enable_activation_offloading=self._enable_activation_offloading,
            compile_model=self._compile,
            base_model_state_dict=ckpt_dict[training.MODEL_KEY],
            lora_weights_state_dict=resume["model"] if resume else None,
        )
        self._tokenizer = config.instantiate(cfg.tokenizer)
        log.info("Tokenizer is initialized from file.")

        self._optimizer = self._setup_optimizer(
            cfg_optimizer=cfg.optimizer, opt_state_dict=resume["optimizer"] if resume else None
        )

        self._loss_fn = config.instantiate(cfg.loss)
        if self._compile:
            training.compile_loss(self._loss_fn)  # in place for chunked CE; LinearCrossEntropyLoss runs eager
        if hasattr(self._loss_fn, "set_model_output"):
            # LinearCrossEntropyLoss: the model returns hidden states, the loss projects them.
            self._loss_fn.set_model_output(self._model)
        elif self._loss_fn.__class__.__name__ == "CEWithChunkedOutputLoss":
            self._model.set_num_output_chunks(self._loss_fn.num_output_chunks)
        log.info("Loss is initialized.")

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
        """Step counters, data position, keep-best bookkeeping and random generators of a resume state."""
        if self.seed != resume["seed"]:
            warn(
                f"seed {self.seed} differs from the saved run's; using the saved {resume['seed']}",
                stacklevel=2,
            )
            self.seed = resume["seed"]
        self.epochs_run = resume["epochs_run"]
        self.global_step = resume["global_step"]
        self.steps_in_epoch = resume["steps_in_epoch"]
        self.stopped_early = resume["stopped_early"]
        self._val.load_state_dict(resume["validation"])
        if resume["dataloader"] is not None:
            self._dataloader.load_state_dict(resume["dataloader"])
        # Mid-epoch, the generators are restored after the epoch's iterator is created (see train).
        self._rng_to_restore = resume["rng"]
        if self.steps_in_epoch == 0:
            set_rng_state(self._rng_to_restore, self._device)
            self._rng_to_restore = None
        self._metrics.truncate(self.global_step)
        log.info(f"Resuming at epoch {self.epochs_run}, step {self.global_step} from {self._output_dir}")

    def _setup_profiler(
        self, cfg_profiler: Optional[DictConfig] = None
    ) -> Union[torch.profiler.profile, DummyProfiler]:
        """The torch profiler of the ``profiler`` section (disabled if absent), as in the stock recipe."""
        if cfg_profiler is None:
            cfg_profiler = DictConfig({"enabled": False})
        if cfg_profiler.get("_component_", None) is None:
            cfg_profiler["_component_"] = "torchtune.training.setup_torch_profiler"
        profiler, profiler_cfg = config.instantiate(cfg_profiler)
        log.info(f" Profiler config after instantiation: {profiler_cfg}")
        return profiler

    def _setup_model(
        self,
        cfg_model: DictConfig,
        enable_activation_checkpointing: bool,
        enable_activation_offloading: bool,
        compile_model: bool,
        base_model_state_dict: dict[str, Any],
        lora_weights_state_dict: Optional[dict[str, Any]] = None,
    ) -> nn.Module:
        """Build the model with adapters trainable, load the base weights (then resumed adapters)."""
        with training.set_default_dtype(self._dtype), self._device:
            model = config.instantiate(cfg_model)
        self._lora_rank = cfg_model.lora_rank
        self._lora_alpha = cfg_model.lora_alpha
        self._lora_attn_modules = list(cfg_model.lora_attn_modules)
        self._apply_lora_to_mlp = cfg_model.apply_lora_to_mlp
        self._apply_lora_to_output = cfg_model.get("apply_lora_to_output", False)
        self.adapter_params = get_adapter_params(model)
        self._is_dora = any("magnitude" in k for k in self.adapter_params)
        set_trainable_params(model, self.adapter_params)
        if compile_model:
            training.compile_model(model)
        if enable_activation_checkpointing:
            training.set_activation_checkpointing(
                model, auto_wrap_policy={modules.TransformerSelfAttentionLayer}
            )
        base_missing, base_unexpected = self._load_base_weights(model, base_model_state_dict)
        if self._is_dora:  # DoRA magnitudes are initialised from the loaded base weights
            for m in model.modules():
                if hasattr(m, "initialize_dora_magnitude"):
                    m.initialize_dora_magnitude()
        lora_missing, lora_unexpected = None, None
        if lora_weights_state_dict is not None:
            lora_missing, lora_unexpected = model.load_state_dict(lora_weights_state_dict, strict=False)
        validate_missing_and_unexpected_for_lora(
            lora_attn_modules=self._lora_attn_modules,
            apply_lora_to_mlp=self._apply_lora_to_mlp,
            apply_lora_to_output=self._apply_lora_to_output,
            base_missing=base_missing,
            base_unexpected=base_unexpected,
            lora_missing=lora_missing,
            lora_unexpected=lora_unexpected,
        )
        training.validate_expected_param_dtype(self.adapter_params.items(), dtype=self._dtype)
        self.activations_handling_ctx = training.get_act_offloading_ctx_manager(
            model, enable_activation_offloading
        )
        log.info(f"Model is initialized with precision {self._dtype}.")
        if self._device.type == "cuda":
            training.log_memory_stats(training.get_memory_stats(device=self._device))
        return model

    def _load_base_weights(self, model: nn.Module, state_dict: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Load the base checkpoint (adapter weights are missing from it by design).

        Returns:
            tuple[list[str], list[str]]: missing and unexpected keys, checked by the caller.
        """
        return model.load_state_dict(state_dict, strict=False)

    def _setup_optimizer(
        self, cfg_optimizer: DictConfig, opt_state_dict: Optional[dict[str, Any]] = None
    ) -> Optimizer:
        """The optimizer over the adapter parameters, with a resumed state if any."""
        optimizer = config.instantiate(cfg_optimizer, self._model.parameters())
        if opt_state_dict:
            optimizer.load_state_dict(opt_state_dict)
        log.info("Optimizer and loss are initialized.")
        return optimizer

    def _setup_lr_scheduler(
        self, cfg_lr_scheduler: Optional[DictConfig], num_training_steps: int, last_epoch: int
    ) -> Optional[Any]:
        """The learning-rate schedule, positioned at ``last_epoch`` (the resumed step - 1)."""
        if cfg_lr_scheduler is None:
            log.info("No learning rate scheduler configured. Using constant learning rate.")
            return None
        lr_scheduler = config.instantiate(
            cfg_lr_scheduler, self._optimizer, num_training_steps=num_training_steps, last_epoch=last_epoch
        )
        log.info("Learning rate scheduler is initialized.")
        return lr_scheduler

    def _setup_data(
        self, cfg_dataset: DictConfig, shuffle: bool, batch_size: int, collate_fn: str
    ) -> StatefulDataLoader:
        """Map-style dataset(s), a stateful sampler and dataloader (the stock recipe's)."""
        if isinstance(cfg_dataset, ListConfig):
            ds = ConcatDataset(datasets=[config.instantiate(c, self._tokenizer) for c in cfg_dataset])
        else:
            ds = config.instantiate(cfg_dataset, self._tokenizer)
        if "left_pad_sequence" in collate_fn:
            raise RuntimeError("left_pad_sequence collator is only for inference.")
        collate = _get_component_from_path(collate_fn)
        sampler = StatefulDistributedSampler(ds, num_replicas=1, rank=0, shuffle=shuffle, seed=0)
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
        return {k: v.cpu() for k, v in self._model.state_dict().items()}

    def _checkpoint_dict(self, merged: bool) -> dict[str, Any]:
        """Adapter weights and config, plus the merged weights (servable as is) when ``merged``."""
        state = self._full_state_dict()
        ckpt_dict: dict[str, Any] = {
            training.ADAPTER_KEY: get_adapter_state_dict(state),
            training.ADAPTER_CONFIG: {
                "r": self._lora_rank,
                "lora_alpha": self._lora_alpha,
                "target_modules": get_lora_module_names(
                    self._lora_attn_modules, self._apply_lora_to_mlp, self._apply_lora_to_output
                ),
                "peft_type": "LORA",
            },
        }
        if merged:
            ckpt_dict[training.MODEL_KEY] = get_merged_lora_ckpt(
                state, rank=self._lora_rank, alpha=self._lora_alpha
            )
        return ckpt_dict

    def save_checkpoint(self, epoch: int) -> None:
        """Publish ``epoch_<epoch>/`` (merged weights + ``adapter_model.pt``) and save the resume state.

        Args:
            epoch (int): the epoch just finished (or stopped).
        """
        start = time.perf_counter()
        self._weights.write(
            self._checkpoint_dict(merged=not self._save_adapter_weights_only),
            f"epoch_{epoch}",
            epoch=epoch,
            adapter_only=self._save_adapter_weights_only,
        )
        self._save_resume_state()
        log.info(f"Checkpoint saved in {time.perf_counter() - start:.2f} seconds.")

    def _save_resume_state(self) -> None:
        """Everything :meth:`setup` needs to continue exactly from this optimizer step."""
        save_resume_state(
            self._output_dir,
            {
                "config": self._config,
                "seed": self.seed,
                "epochs_run": self.epochs_run,
                "global_step": self.global_step,
                "steps_in_epoch": self.steps_in_epoch,
                "stopped_early": self.stopped_early,
                "model": get_adapter_state_dict(self._full_state_dict()),
                "optimizer": self._optimizer.state_dict(),
                "dataloader": self._dataloader.state_dict() if self.steps_in_epoch else None,
                "rng": get_rng_state(self._device),
                "validation": self._val.state_dict(),
            },
        )

    def _loss_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch.pop("labels")
        with self.activations_handling_ctx:
            logits = self._model(**batch)
        # Shift labels to compute loss: labels[..., 1:] against logits[..., :-1, :].
        labels = torch.hstack((labels[..., 1:], self.ignore_labels_cache[: labels.shape[0]]))
        if not isinstance(logits, list):
            labels = labels.reshape(-1)
            logits = logits.reshape(-1, logits.size(-1))
        loss = self._loss_fn(logits, labels)
        del logits  # free logits otherwise it peaks backward memory
        return loss

    def validate(self, epoch: int) -> None:
        """Validate; keep the weights as ``best/`` when they are the best so far."""

        def save_best(record: dict[str, Any]) -> None:
            self._weights.write(
                self._checkpoint_dict(merged=True), "best", epoch=epoch, extra={"best.json": record}
            )

        self._val.run(
            self._model,
            self._tokenizer,
            step=self.global_step,
            epoch=epoch,
            device=self._device,
            dtype=self._dtype,
            metrics=self._metrics,
            save_best=save_best,
        )
        self.stopped_early = self._val.should_stop

    def train(self) -> int:
        """The training loop: stock steps, plus validation, early stopping, save points and clean stops.

        Returns:
            int: 0 when training finished (or stopped early), 128 + signal number after a
            requested stop (the resume state is saved).
        """
        if self._compile:
            log.info("NOTE: torch.compile is enabled and model is compiled in first forward. Expect a relatively slow first iteration.")  # fmt: skip
        self._optimizer.zero_grad()
        if self.epochs_run >= self.total_epochs or self.stopped_early:
            log.info(
                f"Nothing to do: the run in {self._output_dir} already finished at step {self.global_step}."
            )
            return 0

        ga = self._gradient_accumulation_steps
        t0 = time.perf_counter()
        running_loss, num_tokens = 0, 0
        stop = GracefulStop()
        self._profiler.start()
        with stop.installed():
            for curr_epoch in range(self.epochs_run, self.total_epochs):
                pbar = tqdm(total=self._steps_per_epoch, initial=self.steps_in_epoch)
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
                    # Loss is normalized by default, so multiply by the number of tokens: this way
                    # gradient accumulation normalizes by the total number of tokens.
                    current_num_tokens = (batch["labels"] != self._loss_fn.ignore_index).sum()
                    num_tokens += current_num_tokens
                    current_loss = self._loss_step(batch) * current_num_tokens
                    running_loss += current_loss
                    current_loss.backward()
                    micro += 1
                    self._profiler.step()
                    if micro % ga:
                        continue

                    training.scale_grads(self._model, 1 / num_tokens)
                    if self._clip_grad_norm is not None:
                        grad_norm = torch.nn.utils.clip_grad_norm_(
                            self._model.parameters(), max_norm=float(self._clip_grad_norm)
                        )
                    self._optimizer.step()
                    self._optimizer.zero_grad(set_to_none=True)
                    if self._lr_scheduler is not None:
                        self._lr_scheduler.step()
                    self.global_step += 1
                    self.steps_in_epoch += 1

                    loss_to_log = running_loss.item() / num_tokens
                    pbar.update(1)
                    pbar.set_description(f"{curr_epoch + 1}|{self.global_step}|Loss: {loss_to_log}")
                    if self.global_step % self._log_every_n_steps == 0:
                        time_per_step = time.perf_counter() - t0
                        log_dict = {
                            "loss": loss_to_log,
                            "lr": self._optimizer.param_groups[0]["lr"],
                            "tokens_per_second_per_gpu": num_tokens / time_per_step,
                            "samples_per_second": self._batch_size * ga / time_per_step,
                        }
                        if self._log_peak_memory_stats:
                            log_dict.update(memory_stats(self._device))
                        if self._clip_grad_norm is not None:
                            log_dict.update({"grad_norm": grad_norm})
                        self._metrics.log("train", self.global_step, log_dict, epoch=curr_epoch)
                    running_loss, num_tokens = 0, 0

                    end_of_epoch = self.steps_in_epoch >= self._steps_per_epoch
                    if self._val.due(
                        self.global_step, end_of_epoch, end_of_epoch and curr_epoch + 1 == self.total_epochs
                    ):
                        self.validate(curr_epoch)
                    if self.stopped_early:
                        self.epochs_run = curr_epoch + 1
                        self.steps_in_epoch = 0
                        self.save_checkpoint(epoch=curr_epoch)
                        break
                    if stop.requested() and not end_of_epoch:
                        self._save_resume_state()
                        log.info(
                            f"Stopped by signal {stop.signal} at step {self.global_step}; the same command "
                            "with resume_from_checkpoint=True continues from here."
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
                plot_metrics(self._metrics.records(), self._output_dir / "plots", self._val.metric)
                if stop.requested():
                    log.info(
                        f"Stopped by signal {stop.signal} after epoch {curr_epoch}; resume_from_checkpoint=True continues."
                    )
                    self._profiler.stop()
                    return stop.exit_status
        self._profiler.stop()
        plot_metrics(self._metrics.records(), self._output_dir / "plots", self._val.metric)
        return 0

    def cleanup(self) -> None:
        """Close the metric logger."""
        self._metric_logger.close()


@config.parse
def recipe_main(cfg: DictConfig) -> int:
    """Entry point: check the config, set up, train.

    Args:
        cfg (DictConfig): the YAML config merged with the command-line overrides.

    Returns:
        int: the exit status (see :meth:`LoRAFinetuneVisionRecipe.train`).
    """
    cfg = strict_config(cfg, RECIPE_KEYS)
    config.log_config(recipe_name="LoRAFinetuneVisionRecipe", cfg=cfg)
    try:
        recipe = LoRAFinetuneVisionRecipe(cfg=cfg)
        recipe.setup(cfg=cfg)
    except ConfigError as e:
        print(f"error: config: {e}", file=sys.stderr, flush=True)
        return 2
    status = recipe.train()
    recipe.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(recipe_main())
