"""The config keys every one of our fine-tuning recipes reads (each recipe adds its own).

Names, meanings and defaults are torchtune 0.6.1's where the stock recipe has the key, and
torchtune main's for validation (``dataset_val``, ``run_val_every_n_steps``) and step-wise
saving (``save_every_n_steps``).
"""

from __future__ import annotations

from typing import Optional, Union

from torchtune_ext.training.config_check import Component, Key, Section

__all__ = ["COMMON_KEYS", "EARLY_STOPPING_KEYS", "KEEP_BEST_KEYS"]

KEEP_BEST_KEYS = {
    "metric": Key(
        Optional[str], None, "validation metric that ranks checkpoints; null: the task's headline metric"
    ),
    "mode": Key(str, "max", "max: higher is better (every task's headline metric); min: lower is better"),
}

EARLY_STOPPING_KEYS = {
    "patience": Key(int, help="validations in a row without improvement before training stops"),
    "min_delta": Key(float, 0.0, "smallest change of the keep_best metric that counts as an improvement"),
}

COMMON_KEYS: dict[str, Key] = {
    # where things go
    "output_dir": Key(
        str, help="logs, metrics.jsonl, plots/, validation/ (checkpoints: checkpointer.output_dir)"
    ),
    # what is trained
    "model": Key(Component(), help="model builder"),
    "tokenizer": Key(Component(), help="model transform (tokenizer + image transform)"),
    "checkpointer": Key(
        Component("should_load_recipe_state"),
        help="reads the base weights and writes epoch_<k>/ and best/ (HF format)",
    ),
    "resume_from_checkpoint": Key(bool, False, "continue the run in output_dir from its last save point"),
    "save_every_n_steps": Key(Optional[int], None, "also save the resume state every N optimizer steps"),
    # data
    "dataset": Key(Component(many=True), help="training dataset builder (a list of them is concatenated)"),
    "seed": Key(Optional[int], None, "random seed (null: a random one, recorded)"),
    "shuffle": Key(bool, True, "shuffle the training data every epoch"),
    "collate_fn": Key(str, "torchtune.data.padded_collate_sft", "collate function (dotted path)"),
    "batch_size": Key(int, help="samples per device per micro-batch"),
    # validation, keep-best, early stopping
    "dataset_val": Key(
        Component(), None, "generation-based validation (torchtune_ext.training.TaskValidation)"
    ),
    "run_val_every_n_steps": Key(
        Optional[int], None, "validate every N optimizer steps; null: after every epoch"
    ),
    "keep_best": Key(Section(KEEP_BEST_KEYS), None, "keep the best validated weights in best/"),
    "early_stopping": Key(Section(EARLY_STOPPING_KEYS), None, "stop when validation stops improving"),
    # optimisation
    "epochs": Key(int, help="passes over the training data"),
    "max_steps_per_epoch": Key(Optional[int], None, "cap on optimizer steps per epoch"),
    "gradient_accumulation_steps": Key(int, 1, "micro-batches per optimizer step"),
    "optimizer": Key(Component("params"), help="optimizer builder"),
    "lr_scheduler": Key(
        Component("optimizer", "num_training_steps", "last_epoch"), None, "learning-rate schedule"
    ),
    "loss": Key(Component(), help="CEWithChunkedOutputLoss or torchtune_ext.modules.LinearCrossEntropyLoss"),
    "clip_grad_norm": Key(
        Optional[Union[float, str]], None, "clip the gradient norm to this ('inf': log only)"
    ),
    "compile": Key(bool, False, "torch.compile the model and the loss"),
    # environment
    "device": Key(str, "cuda", "cuda or cpu"),
    "dtype": Key(str, "bf16", "bf16 or fp32"),
    "enable_activation_checkpointing": Key(bool, False, "recompute activations in backward"),
    "enable_activation_offloading": Key(bool, False, "offload activations to CPU (CUDA only)"),
    "cudnn_deterministic_mode": Key(Optional[bool], None, "torch deterministic algorithms"),
    # logging
    "metric_logger": Key(Component(), help="torchtune metric logger (DiskLogger, WandBLogger, ...)"),
    "log_every_n_steps": Key(int, 1, "log training metrics every N optimizer steps"),
    "log_peak_memory_stats": Key(bool, True, "log peak memory (CUDA allocator stats on GPU, RSS on CPU)"),
    "profiler": Key(Component(), None, "torchtune.training.setup_torch_profiler settings"),
}
