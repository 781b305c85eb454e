"""Time training steps of a torchtune config on synthetic real-sized W-2 samples (11B or tiny).

Runs our single-device recipe class (``torchtune_ext.recipes.full_finetune_vision`` or
``lora_finetune_vision``, picked from the model builder's name; torchtune 0.6.1's recipes plus
validation, resume and a wired ``LinearCrossEntropyLoss``) through its own ``setup()``, with the
config checked by the recipe's own keys, and three substitutions:

* weights: the real architecture randomly initialised by the config's builder directly on
  the target device (the recipe instantiates under ``with device:``; nothing is built on the
  CPU first); a subclass overrides the recipe's ``load_checkpoint`` (no checkpointer) and
  ``_load_base_weights`` (keep the builder's weights), and tanh gates are set to 0.5–1.0 like a
  trained checkpoint's (fresh builders zero them, which cuts the image path off);
* tokenizer: :class:`torchtune_ext.datasets.SyntheticW2Transform` with the config's tile
  settings (no tokenizer file needed);
* dataset: :func:`synthetic_w2.synthetic_w2_dataset`, 612×792 forms from our
  generator (4 tiles of 560 px at 11B; ~600 tokens, ~575 of them answer).

It then runs ``--warmup`` + ``--steps`` optimizer steps with the recipe's own ``_loss_step``,
optimizer (or optimizer-in-backward hooks), clipping and scheduler, and reports samples/s,
loss tokens/s (the recipe's ``tokens_per_second``), step time p50/p95, the time spent waiting
for data, peak memory (CUDA max allocated/reserved since setup, plus bitsandbytes' paged
optimizer state, which lives in managed memory outside PyTorch's counters; peak RSS on CPU),
and MFU. ``--flops-only`` skips training and reports tokens and FLOPs per sample of any size
from the meta device, on a CPU.

FLOPs: counted once with ``torch.utils.flop_counter`` for the first timed batch, on a copy of
the model on the ``meta`` device (no memory, no time on the GPU) with the same trainable
parameters: forward + backward of every matmul, convolution and attention, full-vocabulary
projection, no activation-checkpointing recompute (model FLOPs, so MFU rather than HFU).
Batches differ only in text length (±2 %), so one count stands for every step. MFU divides by
the bf16 dense peak of the GPU (H100 SXM/H200 989 TFLOP/s, H100 PCIe 756, H100 NVL 835, A100
312) or ``--peak-tflops``; on CPU it is reported only with ``--peak-tflops``.

Each measured run is its own subprocess (clean peak-memory counters). Examples::

    python benchmarks/train_11b.py --config configs/11B_full_w2.yaml --reference --steps 20
    python benchmarks/train_11b.py --config configs/11B_full_w2.yaml --with linear_ce --with tiles2
    python benchmarks/train_11b.py --config configs/tiny/full_w2.yaml --config configs/tiny/lora_w2.yaml \\
        --steps 2 --warmup 1 batch_size=2
    python benchmarks/train_11b.py --loss-parity "configs/tiny/full_w2.yaml --reference" \\
        "configs/tiny/full_w2.yaml --reference --with linear_ce" --steps 50

``--reference`` adds, per config, a run with the reference W-2 recipe's settings (llama-cookbook
``11B_full_w2.yaml`` / ``11B_lora_w2.yaml``; its ``LinearCrossEntropyLoss``, absent from
0.6.1, replaced by ``CEWithChunkedOutputLoss``). ``--with NAME`` adds an optimisation to our
runs (listed at the end). ``key=value`` arguments override the config in every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import readme_tables  # benchmarks/ is sys.path[0] when run as a script
from omegaconf import DictConfig, OmegaConf
from readme_tables import publish

REPO = Path(__file__).resolve().parents[1]
_RESULT = "@@train_11b "

#: The reference W-2 recipe (llama-cookbook getting-started/finetuning/vision), per recipe.
REFERENCE: dict[str, dict[str, Any]] = {
    "full": {
        "model": {"decoder_trainable": False, "encoder_trainable": True, "fusion_trainable": True},
        "optimizer": {"_component_": "bitsandbytes.optim.PagedAdamW8bit", "lr": 2e-5},
        "optimizer_in_bwd": True,
        "clip_grad_norm": None,
        "lr_scheduler": None,
        "compile": True,
    },
    "lora": {
        "model": {
            "decoder_trainable": "frozen",
            "encoder_trainable": "lora",
            "fusion_trainable": "lora",
            "lora_attn_modules": ["q_proj", "v_proj", "output_proj"],
            "apply_lora_to_mlp": True,
            "apply_lora_to_output": False,
            "lora_rank": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "quantize_base": False,
        },
        "optimizer": {"_component_": "torch.optim.AdamW", "fused": True, "weight_decay": 0.01, "lr": 1e-4},
        # optimizer_in_bwd: true in its YAML is never read by the 0.6.1 LoRA recipe.
        "clip_grad_norm": 1.0,
        "lr_scheduler": {
            "_component_": "torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup",
            "num_warmup_steps": 100,
        },
        "compile": False,
    },
}
_REFERENCE_COMMON: dict[str, Any] = {
    "loss": {"_component_": "torchtune.modules.loss.CEWithChunkedOutputLoss"},
    "enable_activation_checkpointing": True,
    "enable_activation_offloading": False,
    "dtype": "bf16",
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "tokenizer": {"max_num_tiles": 4},
}


def _opt_linear_ce(cfg: DictConfig) -> None:
    cfg.loss = {"_component_": "torchtune_ext.modules.LinearCrossEntropyLoss"}


def _opt_ao_adamw8bit(cfg: DictConfig) -> None:
    keep = {k: cfg.optimizer[k] for k in ("lr", "weight_decay", "betas", "eps") if k in cfg.optimizer}
    cfg.optimizer = {"_component_": "torchao.optim.AdamW8bit", **keep}


def _opt_tiles(n: int) -> Callable[[DictConfig], None]:
    def apply(cfg: DictConfig) -> None:
        cfg.tokenizer.max_num_tiles = n

    return apply


def _opt_offload(cfg: DictConfig) -> None:
    cfg.enable_activation_checkpointing = True
    cfg.enable_activation_offloading = True


def _opt_no_ac(cfg: DictConfig) -> None:
    cfg.enable_activation_checkpointing = False
    cfg.enable_activation_offloading = False


def _opt_compile_encoder(cfg: DictConfig) -> None:
    cfg.compile = True
    cfg.bench_compile_encoder = True  # read by this script, not by the recipe


#: Optimisations a run can add with ``--with NAME``: (what it does, config change).
OPTIONS: dict[str, tuple[str, Callable[[DictConfig], None]]] = {
    "linear_ce": ("torchtune_ext.modules.LinearCrossEntropyLoss (no full logits)", _opt_linear_ce),
    "ao_adamw8bit": ("torchao.optim.AdamW8bit instead of the configured optimizer", _opt_ao_adamw8bit),
    "tiles2": ("image tile budget 2 (612x792 forms: 2 tiles at 0.92x instead of 4 at 1.41x)", _opt_tiles(2)),
    "tiles1": ("image tile budget 1", _opt_tiles(1)),
    "offload": ("activation offloading to CPU (CUDA only; with checkpointing)", _opt_offload),
    "no_ac": ("no activation checkpointing", _opt_no_ac),
    "compile_encoder": ("also torch.compile the vision encoder's layers", _opt_compile_encoder),
}


# ----------------------------------------------------------------------------- run specs


def recipe_kind(cfg: DictConfig) -> str:
    """``"lora"`` if the model builder is a (Q)LoRA one, else ``"full"``.

    Args:
        cfg (DictConfig): the config.

    Returns:
        str: the recipe kind.
    """
    return "lora" if "lora" in str(cfg.model._component_).rsplit(".", 1)[-1] else "full"


def resolve_config(
    config: Path, *, reference: bool, options: list[str], overrides: list[str], device: str | None
) -> DictConfig:
    """Load a config and apply the reference settings, options and overrides, in that order.

    Args:
        config (Path): YAML file.
        reference (bool): apply the reference recipe's settings.
        options (list[str]): names from :data:`OPTIONS`.
        overrides (list[str]): ``key=value`` dot-list overrides.
        device (str | None): ``cuda``/``cpu`` to override the config's device.

    Returns:
        DictConfig: the resolved config.

    Raises:
        ValueError: on an unknown option or a malformed override.
    """
    cfg = OmegaConf.load(config)
    if reference:
        settings = {**REFERENCE[recipe_kind(cfg)], **_REFERENCE_COMMON}
        for key, value in settings.items():
            if key in ("model", "tokenizer"):
                cfg[key] = OmegaConf.merge(cfg[key], value)
            else:
                cfg[key] = value
    for name in options:
        if name not in OPTIONS:
            raise ValueError(f"unknown --with {name!r}; choose from {', '.join(OPTIONS)}")
        OPTIONS[name][1](cfg)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"override {bad[0]!r} is not key=value")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    if device:
        cfg.device = device
    return cfg


class _SpecParser(argparse.ArgumentParser):
    """Parser of one run spec; raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise ValueError(message)


def _spec_parser() -> argparse.ArgumentParser:
    p = _SpecParser(prog="run spec", add_help=False)
    p.add_argument("config", type=Path)
    p.add_argument("--reference", action="store_true")
    p.add_argument("--with", dest="options", action="append", default=[])
    p.add_argument("overrides", nargs="*")
    return p


def parse_spec(text: str) -> dict[str, Any]:
    """Parse a ``--loss-parity`` side: ``"CONFIG [--reference] [--with NAME]... [key=value]..."``.

    Args:
        text (str): the side as one shell-quoted string.

    Returns:
        dict[str, Any]: ``config``, ``reference``, ``options``, ``overrides``.

    Raises:
        ValueError: if the text does not parse.
    """
    try:
        ns = _spec_parser().parse_intermixed_args(shlex.split(text))
    except ValueError as e:
        raise ValueError(f"cannot parse run spec {text!r}: {e}") from None
    return {"config": ns.config, "reference": ns.reference, "options": ns.options, "overrides": ns.overrides}


def settings_label(reference: bool, options: list[str], overrides: list[str]) -> str:
    """Short label of a run's settings for the table.

    Args:
        reference (bool): reference settings.
        options (list[str]): ``--with`` names.
        overrides (list[str]): overrides specific to this run.

    Returns:
        str: e.g. ``reference`` or ``ours +linear_ce batch_size=4``.
    """
    return " ".join(["reference" if reference else "ours", *(f"+{o}" for o in options), *overrides])


# ----------------------------------------------------------------------------- measurement (child)


def _load_recipe_class(kind: str) -> tuple[type, dict[str, Any]]:
    """Our recipe class for ``kind`` without a checkpointer (the model keeps its random init), and its keys."""
    import importlib

    name, cls = {
        "full": ("full_finetune_vision", "FullFinetuneVisionRecipe"),
        "lora": ("lora_finetune_vision", "LoRAFinetuneVisionRecipe"),
    }[kind]
    module = importlib.import_module(f"torchtune_ext.recipes.{name}")
    base = getattr(module, cls)

    class BenchRecipe(base):  # type: ignore[misc, valid-type]
        """The recipe reading no checkpoint: the builder's random weights stay."""

        def load_checkpoint(self, cfg_checkpointer: DictConfig) -> dict[str, Any]:
            from torchtune import training

            return {training.MODEL_KEY: {}}

        def _load_base_weights(self, model: Any, state_dict: dict[str, Any]) -> Any:
            return ([], []) if kind == "lora" else None

    return BenchRecipe, module.RECIPE_KEYS


def _meta_model(cfg: DictConfig, kind: str) -> Any:
    """The config's model on the meta device, trainable as in the recipe (NF4 left out)."""
    import torch
    from torchtune import config as tt_config
    from torchtune.modules.peft import get_adapter_params, set_trainable_params

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if kind == "lora":
        model_cfg["quantize_base"] = False  # NF4 needs real data; the matmul FLOPs are the same
    with torch.device("meta"):
        model = tt_config.instantiate(OmegaConf.create(model_cfg))
    if kind == "lora":
        set_trainable_params(model, get_adapter_params(model))
    return model


def _vocab_size(model: Any) -> int:
    emb = model.decoder.tok_embeddings
    return int(getattr(emb, "embedding", emb).num_embeddings)


def _count_flops(model: Any, batch: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """Forward + backward FLOPs of one batch on the meta-device model (full-logits cross-entropy).

    Returns the total and the FLOPs under ``model.encoder`` and ``model.decoder``.
    """
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode
    from torchtune.modules.model_fusion import FusionEmbedding

    for module in model.modules():
        if isinstance(module, FusionEmbedding):
            # masked_select has no meta kernel; an embedding lookup has no FLOPs either way.
            def embed(self: Any, tokens: torch.Tensor) -> torch.Tensor:
                zero = 0 * (self.embedding.weight.sum() + self.fusion_embedding.weight.sum())
                return self._fused_embed(*tokens.shape) + zero

            module.forward = types.MethodType(embed, module)
        if hasattr(module, "rope_init") and not getattr(module, "is_cache_built", True):
            # RoPE skips building its cache on meta; an empty meta cache has the right shape.
            cache = torch.empty(module.max_seq_len, module.dim // 2, 2, device="meta")
            module.register_buffer("cache", cache, persistent=False)
            module.is_cache_built = True

    def meta(x: Any) -> Any:
        return x.to("meta") if isinstance(x, torch.Tensor) else x

    enc = batch["encoder_input"]
    # aspect_ratio stays on the CPU: the tile embeddings read its values.
    encoder_input = {"images": meta(enc["images"]), "aspect_ratio": enc["aspect_ratio"]}
    with FlopCounterMode(display=False) as counter:
        logits = model(
            meta(batch["tokens"]), encoder_input=encoder_input, encoder_mask=meta(batch["encoder_mask"])
        )
        loss = F.cross_entropy(logits.flatten(0, 1).float(), meta(batch["labels"]).flatten())
        loss.backward()
    counts = counter.get_flop_counts()
    root = type(model).__name__
    by_part = {part: int(sum(counts.get(f"{root}.{part}", {}).values())) for part in ("encoder", "decoder")}
    return int(counter.get_total_flops()), by_part


#: bf16 dense tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
_PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989.4e12),
    ("H200", 989.4e12),
    ("GH200", 989.4e12),
    ("A100", 312e12),
)


def _peak_flops(device: Any, dtype: Any, given_tflops: float | None) -> float | None:
    import torch

    if given_tflops:
        return given_tflops * 1e12
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in _PEAK_BF16 if key in name), None)


def _cpu_copy(batch: dict[str, Any]) -> dict[str, Any]:
    # batch_to_device replaces dict values in place: keep our own (nested) dicts of the CPU tensors.
    return {k: _cpu_copy(v) if isinstance(v, dict) else v for k, v in batch.items()}


def _is_gate(name: str) -> bool:
    # As torchtune_ext.models.make_tiny: tanh gates of cross-attention, global layers, tile embeddings.
    return name.endswith(("_scale.scale", ".gate"))


def _open_gates(model: Any, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if _is_gate(name):
                param.copy_(0.5 + 0.5 * torch.rand(param.shape, generator=generator))


def _compile_encoder(model: Any) -> None:
    from torchtune.modules import TransformerSelfAttentionLayer

    for module in reversed(list(model.encoder.modules())):
        if isinstance(module, TransformerSelfAttentionLayer):
            module.compile(backend=os.environ.get("TORCH_COMPILE_BACKEND", "inductor"))


def _rebuild_loader(recipe: Any, num_workers: int) -> None:
    from torchdata.stateful_dataloader import StatefulDataLoader

    old = recipe._dataloader
    recipe._dataloader = StatefulDataLoader(
        dataset=old.dataset,
        batch_size=old.batch_size,
        sampler=old.sampler,
        collate_fn=old.collate_fn,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=recipe._device.type == "cuda",
        persistent_workers=True,
    )


def _train_step(recipe: Any, batches: list[dict[str, Any]]) -> tuple[float, int]:
    """One optimizer step over ``batches`` (gradient accumulation), as the recipes' loop does."""
    import torch
    from torchtune import training, utils

    ignore = recipe._loss_fn.ignore_index
    num_tokens = 0
    running = 0.0
    for batch in batches:
        utils.batch_to_device(batch, recipe._device)
        current = (batch["labels"] != ignore).sum()
        num_tokens += current
        loss = recipe._loss_step(batch) * current
        running += loss.detach()
        loss.backward()
    if not getattr(recipe, "_optimizer_in_bwd", False):
        training.scale_grads(recipe._model, 1 / num_tokens)
        if recipe._clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(recipe._model.parameters(), max_norm=float(recipe._clip_grad_norm))
        recipe._optimizer.step()
        recipe._optimizer.zero_grad(set_to_none=True)
    if recipe._lr_scheduler is not None:
        recipe._lr_scheduler.step()
    recipe.global_step += 1
    return float(running / num_tokens), int(num_tokens)


def _use_synthetic_data(cfg: DictConfig, vocab: int, num_samples: int, unique_forms: int) -> None:
    """Point the config's tokenizer and dataset at the synthetic W-2 builders, keeping tile settings."""
    tok = cfg.tokenizer
    cfg.tokenizer = {
        "_component_": "synthetic_w2.synthetic_w2_transform",
        "vocab_size": vocab,
        "tile_size": tok.get("tile_size", tok.get("image_size")),
        "patch_size": tok.get("patch_size", 14),
        "max_num_tiles": tok.get("max_num_tiles", 4),
        "max_seq_len": tok.get("max_seq_len", 8192),
        # The model computes in the training dtype; images must match it.
        "image_dtype": {"bf16": "bfloat16", "fp32": "float32"}[str(cfg.dtype)],
    }
    cfg.dataset = {
        "_component_": "synthetic_w2.synthetic_w2_dataset",
        "num_samples": num_samples,
        "unique_forms": unique_forms,
        "seed": 0,
    }


def count_only(job: dict[str, Any]) -> dict[str, Any]:
    """FLOPs and token counts of one batch of a config, on the meta device (no training, any size).

    Args:
        job (dict[str, Any]): the run spec and the global options.

    Returns:
        dict[str, Any]: tokens per sample and FLOPs per sample, total and by model part.
    """
    from torchtune import config as tt_config
    from torchtune.data import padded_collate_tiled_images_and_mask

    cfg = resolve_config(
        Path(job["config"]),
        reference=job["reference"],
        options=job["options"],
        overrides=job["overrides"],
        device=None,
    )
    kind = recipe_kind(cfg)
    batch_size = int(cfg.batch_size)
    model = _meta_model(cfg, kind)
    # At least 8 samples: their decode + transform time is the per-sample data cost reported.
    _use_synthetic_data(cfg, _vocab_size(model), max(batch_size, 8), job["unique_forms"])
    transform = tt_config.instantiate(cfg.tokenizer)
    dataset = tt_config.instantiate(cfg.dataset, transform)
    start = time.perf_counter()
    samples = [dataset[i] for i in range(len(dataset))]
    data_s = (time.perf_counter() - start) / len(samples)
    batch = padded_collate_tiled_images_and_mask(samples[:batch_size], padding_idx=transform.pad_id)
    total, by_part = _count_flops(model, batch)
    tokens_per_tile = (int(cfg.tokenizer.tile_size) // int(cfg.tokenizer.patch_size)) ** 2 + 1
    images = batch["encoder_input"]["images"]
    return {
        "config": str(job["config"]),
        "settings": settings_label(job["reference"], job["options"], job["overrides_own"]),
        "recipe": kind,
        "batch_size": batch_size,
        "max_num_tiles": int(cfg.tokenizer.max_num_tiles),
        "tiles_per_sample": math.prod(images.shape[:3]) / batch_size,
        "image_canvas": [
            int(x) * int(cfg.tokenizer.tile_size) for x in batch["encoder_input"]["aspect_ratio"][0, 0]
        ],
        "text_tokens_per_sample": int((batch["tokens"] != transform.pad_id).sum()) / batch_size,
        "loss_tokens_per_sample": int((batch["labels"] != -100).sum()) / batch_size,
        "encoder_tokens_per_sample": math.prod(images.shape[:3]) * tokens_per_tile / batch_size,
        "flops_per_sample": total / batch_size,
        "encoder_flops_per_sample": by_part.get("encoder", 0) / batch_size,
        "decoder_flops_per_sample": by_part.get("decoder", 0) / batch_size,
        "data_s_per_sample": data_s,
    }


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Set up the recipe for one run spec and time its steps (runs in the child process).

    Args:
        job (dict[str, Any]): the run spec and the global options.

    Returns:
        dict[str, Any]: the measurements (see the module docstring).
    """
    import torch

    cfg = resolve_config(
        Path(job["config"]),
        reference=job["reference"],
        options=job["options"],
        overrides=job["overrides"],
        device=job["device"],
    )
    kind = recipe_kind(cfg)
    steps, warmup = job["steps"], job["warmup"]
    ga = int(cfg.get("gradient_accumulation_steps", 1))
    batch_size = int(cfg.batch_size)
    meta_model = _meta_model(cfg, kind)
    vocab = _vocab_size(meta_model)

    tmp = tempfile.mkdtemp(prefix="train_11b_")
    _use_synthetic_data(cfg, vocab, (warmup + steps) * batch_size * ga, job["unique_forms"])
    cfg.output_dir = tmp
    cfg.metric_logger = {
        "_component_": "torchtune.training.metric_logging.DiskLogger",
        "log_dir": f"{tmp}/logs",
    }
    cfg.epochs, cfg.max_steps_per_epoch, cfg.resume_from_checkpoint = 1, None, False
    cfg.pop("profiler", None)
    compile_encoder = bool(cfg.pop("bench_compile_encoder", False))

    from torchtune_ext.training import check_config

    recipe_class, recipe_keys = _load_recipe_class(kind)
    # Variables only the replaced tokenizer/dataset used (data_dir) would count as unknown keys.
    text = OmegaConf.to_yaml(cfg)
    for key in [k for k in cfg if k not in recipe_keys and "${" + str(k) not in text]:
        cfg.pop(key)
    cfg = check_config(cfg, recipe_keys)
    recipe = recipe_class(cfg)
    t_setup = time.perf_counter()
    recipe.setup(cfg)
    if compile_encoder:
        _compile_encoder(recipe._model)
    _open_gates(recipe._model, int(cfg.seed or 0))
    if job["num_workers"]:
        _rebuild_loader(recipe, job["num_workers"])
    setup_s = time.perf_counter() - t_setup

    device = recipe._device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    recipe._dataloader.sampler.set_epoch(0)
    batches = iter(recipe._dataloader)
    pad_id = recipe._tokenizer.pad_id
    tokens_per_tile = (int(cfg.tokenizer.tile_size) // int(cfg.tokenizer.patch_size)) ** 2 + 1
    losses, times, data_times, loss_tokens, text_tokens, enc_tokens = [], [], [], [], [], []
    first_timed: dict[str, Any] | None = None
    for step in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(ga)]
        t_data = time.perf_counter() - t0
        if step == warmup:
            first_timed = _cpu_copy(micro[0])
        text = sum(int((b["tokens"] != pad_id).sum()) for b in micro)
        enc = sum(math.prod(b["encoder_input"]["images"].shape[:3]) * tokens_per_tile for b in micro)
        loss, n_loss = _train_step(recipe, micro)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        losses.append(loss)
        if step >= warmup:
            times.append(elapsed)
            data_times.append(t_data)
            loss_tokens.append(n_loss)
            text_tokens.append(text)
            enc_tokens.append(enc)

    assert first_timed is not None
    flops = _count_flops(meta_model, first_timed)[0] if job["count_flops"] else None
    peak = _peak_flops(device, recipe._dtype, job["peak_tflops"])
    total = sum(times)
    samples = batch_size * ga * steps
    result: dict[str, Any] = {
        "config": str(job["config"]),
        "settings": settings_label(job["reference"], job["options"], job["overrides_own"]),
        "recipe": kind,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": str(cfg.dtype),
        "optimizer": str(OmegaConf.select(cfg, "optimizer._component_")),
        "optimizer_in_bwd": bool(cfg.get("optimizer_in_bwd", False)),
        "loss_fn": type(recipe._loss_fn).__name__,
        "compile": bool(cfg.compile),
        "compile_encoder": compile_encoder,
        "activation_checkpointing": bool(cfg.get("enable_activation_checkpointing", False)),
        "activation_offloading": bool(cfg.get("enable_activation_offloading", False)),
        "max_num_tiles": int(cfg.tokenizer.max_num_tiles),
        "batch_size": batch_size,
        "gradient_accumulation_steps": ga,
        "num_workers": job["num_workers"],
        "steps": steps,
        "warmup": warmup,
        "setup_s": setup_s,
        "samples_per_s": samples / total,
        "tokens_per_s": sum(loss_tokens) / total,
        "text_tokens_per_s": sum(text_tokens) / total,
        "step_time_p50_s": statistics.median(times),
        "step_time_p95_s": _percentile(times, 95),
        "data_time_mean_s": statistics.fmean(data_times),
        "text_tokens_per_sample": sum(text_tokens) / samples,
        "encoder_tokens_per_sample": sum(enc_tokens) / samples,
        "loss_tokens_per_sample": sum(loss_tokens) / samples,
        "flops_per_step": flops,
        "peak_flops": peak,
        "mfu": (flops * steps / total / peak) if flops and peak else None,
        "losses": losses,
        "final_loss": losses[-1],
    }
    if cuda:
        free, total_bytes = torch.cuda.mem_get_info(device)
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
        # bitsandbytes' paged optimizer state lives in CUDA managed memory, outside PyTorch's
        # allocator and its counters; add it to compare with an optimizer whose state is counted.
        result["paged_state_gib"] = _paged_state_bytes(recipe) / 2**30
        result["device_used_end_gib"] = (total_bytes - free) / 2**30
    else:
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def _paged_state_bytes(recipe: Any) -> int:
    """Bytes of optimizer state in bitsandbytes paged (managed) buffers."""
    import torch

    wrapper = getattr(recipe, "_optim_ckpt_wrapper", None)
    optimizers = list(wrapper.optim_map.values()) if wrapper is not None else [recipe._optimizer]
    return sum(
        value.nbytes
        for optimizer in optimizers
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and getattr(value, "is_paged", False)
    )


def cpu_name() -> str:
    """The CPU's model name and core count, e.g. ``Intel(R) Xeon(R) Processor (2 CPUs)``."""
    return f"{readme_tables.cpu_name()} ({os.cpu_count()} CPUs)"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ----------------------------------------------------------------------------- orchestration (parent)


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    payload = json.dumps({**job, "config": str(job["config"])})
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_child", payload],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT) :])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    label = settings_label(job["reference"], job["options"], job["overrides_own"])
    raise RuntimeError(f"{job['config']} ({label}) failed (exit {proc.returncode}):\n{tail}")


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


TABLE_HEADER = (
    "| config | settings | batch | samples/s | loss tokens/s | step p50 (s) | step p95 (s) | data (s/step) "
    "| peak alloc (GiB) | peak reserved (GiB) | MFU | device |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(r: dict[str, Any]) -> str:
    """One Markdown table row for a result (CPU: peak RSS in the allocated column).

    Args:
        r (dict[str, Any]): a result from :func:`measure`.

    Returns:
        str: the row.
    """
    alloc = r.get("peak_allocated_gib", r.get("peak_rss_gib"))
    alloc_text = _gib(alloc) + ("" if "peak_allocated_gib" in r else " (RSS)")
    mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
    batch = (
        f"{r['batch_size']}x{r['gradient_accumulation_steps']}"
        if r["gradient_accumulation_steps"] > 1
        else r["batch_size"]
    )
    return (
        f"| {Path(r['config']).stem} | {r['settings']} | {batch} | {r['samples_per_s']:.3f} "
        f"| {r['tokens_per_s']:.0f} | {r['step_time_p50_s']:.3f} | {r['step_time_p95_s']:.3f} "
        f"| {r['data_time_mean_s']:.3f} | {alloc_text} | {_gib(r.get('peak_reserved_gib'))} | {mfu} "
        f"| {r['device_name']} |"
    )


def _emit(result: dict[str, Any], json_out: Path | None) -> None:
    line = json.dumps(result)
    print(line, flush=True)
    if json_out:
        with json_out.open("a") as f:
            f.write(line + "\n")


def loss_parity(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-step loss differences of two runs, and the reference's own step-to-step change as a scale.

    Args:
        a (list[float]): losses of run A (the reference side) per step.
        b (list[float]): losses of run B per step.

    Returns:
        dict[str, float]: ``max_abs_diff``, ``mean_abs_diff`` over the common steps, and
        ``a_step_to_step_mean_abs`` (mean |a[i] - a[i-1]|: how much the loss moves from one
        sample to the next, the noise a settings difference should stay well inside).

    Raises:
        ValueError: if either run has no steps.
    """
    n = min(len(a), len(b))
    if n == 0:
        raise ValueError("loss parity needs at least one step on each side")
    diffs = [abs(x - y) for x, y in zip(a[:n], b[:n], strict=True)]
    moves = [abs(a[i] - a[i - 1]) for i in range(1, n)]
    return {
        "steps": n,
        "max_abs_diff": max(diffs),
        "mean_abs_diff": statistics.fmean(diffs),
        "a_step_to_step_mean_abs": statistics.fmean(moves) if moves else float("nan"),
    }


def _parser() -> argparse.ArgumentParser:
    options = "\n".join(f"  {name:<16} {text}" for name, (text, _) in OPTIONS.items())
    p = argparse.ArgumentParser(
        prog="python benchmarks/train_11b.py",
        description=__doc__,
        epilog=f"--with options:\n{options}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, action="append", default=[], help="config YAML (repeatable)")
    p.add_argument(
        "--reference", action="store_true", help="also run each config with the reference settings"
    )
    p.add_argument(
        "--with",
        dest="options",
        action="append",
        default=[],
        choices=list(OPTIONS),
        help="optimisation for our runs",
    )
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps (default 10)")
    p.add_argument(
        "--warmup", type=int, default=3, help="untimed steps first, for compile and caches (default 3)"
    )
    p.add_argument("--device", choices=["cuda", "cpu"], help="override the config's device")
    p.add_argument("--num-workers", type=int, default=0, help="dataloader workers (stock recipes: 0)")
    p.add_argument("--unique-forms", type=int, default=8, help="distinct W-2 forms rendered (default 8)")
    p.add_argument("--peak-tflops", type=float, help="peak FLOP/s for MFU, in TFLOP/s (default: by GPU name)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (and MFU)")
    p.add_argument(
        "--flops-only",
        action="store_true",
        help="no training: count tokens and FLOPs of one batch on the meta device (any size, on CPU)",
    )
    p.add_argument("--json-out", type=Path, help="also append each JSON result line to this file")
    p.add_argument(
        "--loss-parity",
        nargs=2,
        metavar=("A", "B"),
        help='compare per-step losses of two runs on the same data and seed; each side is "CONFIG '
        '[--reference] [--with NAME]... [key=value]..." (one quoted string); --warmup is 0',
    )
    p.add_argument(
        "--readme",
        type=Path,
        help="also write the table into this README: between its <!-- table:train_11b_flops --> markers "
        "with --flops-only, else <!-- table:train_11b_cpu --> or <!-- table:train_11b_gpu --> by device",
    )
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every run")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    return p


def _jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs the arguments ask for, each checked by resolving its config once here."""
    common = {
        "steps": args.steps,
        "warmup": args.warmup,
        "device": args.device,
        "num_workers": args.num_workers,
        "unique_forms": args.unique_forms,
        "peak_tflops": args.peak_tflops,
        "count_flops": not args.no_flops,
    }
    if args.steps < 1 or args.warmup < 0 or args.num_workers < 0 or args.unique_forms < 1:
        raise ValueError("--steps and --unique-forms must be >= 1, --warmup and --num-workers >= 0")
    jobs: list[dict[str, Any]] = []
    if args.loss_parity:
        for text in args.loss_parity:
            side = parse_spec(text)
            own = side["overrides"]
            jobs.append(
                {**common, **side, "overrides": [*args.overrides, *own], "overrides_own": own, "warmup": 0}
            )
    elif not args.config:
        raise ValueError("give --config (repeatable) or --loss-parity A B")
    if args.readme and args.loss_parity:
        raise ValueError(
            "--readme publishes the speed or FLOP table; --loss-parity prints its own comparison"
        )
    if args.readme and not args.readme.is_file():
        raise ValueError(f"--readme {args.readme}: no such file")
    for config in args.config if not args.loss_parity else []:
        run = {**common, "config": config, "overrides": args.overrides, "overrides_own": []}
        if args.reference:
            jobs.append({**run, "reference": True, "options": []})
        jobs.append({**run, "reference": False, "options": args.options})
    cfgs = [
        resolve_config(
            j["config"], reference=j["reference"], options=j["options"], overrides=j["overrides"], device=None
        )
        for j in jobs
    ]
    if args.loss_parity:
        sizes = {int(c.batch_size) * int(c.get("gradient_accumulation_steps", 1)) for c in cfgs}
        if len(sizes) > 1:
            raise ValueError(
                f"the two sides train on different samples per step ({sorted(sizes)}); "
                "add e.g. batch_size=1 to compare step by step"
            )
    return jobs


FLOPS_HEADER = (
    "| config | settings | tiles/sample (canvas) | text tokens | loss tokens | encoder tokens "
    "| TFLOP/sample (fwd+bwd) | encoder share | data (s/sample) |\n|---|---|---|---|---|---|---|---|---|"
)


def flops_row(r: dict[str, Any]) -> str:
    """One Markdown row of a :func:`count_only` result.

    Args:
        r (dict[str, Any]): the result.

    Returns:
        str: the row.
    """
    canvas = "x".join(str(x) for x in r["image_canvas"])
    share = r["encoder_flops_per_sample"] / r["flops_per_sample"]
    return (
        f"| {Path(r['config']).stem} | {r['settings']} | {r['tiles_per_sample']:.0f} ({canvas} px) "
        f"| {r['text_tokens_per_sample']:.0f} | {r['loss_tokens_per_sample']:.0f} "
        f"| {r['encoder_tokens_per_sample']:.0f} | {r['flops_per_sample'] / 1e12:.2f} | {100 * share:.0f} % "
        f"| {r['data_s_per_sample']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv (list[str] | None): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 on success, 1 if a run failed, 2 on bad arguments.
    """
    args = _parser().parse_args(argv)
    if args._child:
        print(_RESULT + json.dumps(measure(json.loads(args._child))), flush=True)
        return 0
    try:
        jobs = _jobs(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"# train_11b: {platform.machine()}, {os.cpu_count()} CPUs, steps {args.steps}", flush=True)
    if args.flops_only:
        rows = [count_only(job) for job in jobs]
        for r in rows:
            _emit(r, args.json_out)
        table = FLOPS_HEADER + "\n" + "\n".join(flops_row(r) for r in rows)
        print("\n" + table)
        if args.readme:
            publish(
                args.readme, "train_11b_flops", table, ["benchmarks/train_11b.py", *(argv or sys.argv[1:])]
            )
        return 0

    results, failed = [], False
    for job in jobs:
        try:
            results.append(_run_child(job))
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed = True
            continue
        _emit(results[-1], args.json_out)
    table = TABLE_HEADER + "\n" + "\n".join(table_row(r) for r in results)
    print("\n" + table)
    if args.readme and results and not failed:
        name = "train_11b_gpu" if any("peak_allocated_gib" in r for r in results) else "train_11b_cpu"
        publish(args.readme, name, table, ["benchmarks/train_11b.py", *(argv or sys.argv[1:])])
    if args.loss_parity:
        print("(loss-parity runs have no warmup: their timings include compilation)")
    if args.loss_parity and len(results) == 2:
        parity: dict[str, Any] = {
            "mode": "loss_parity",
            "a": args.loss_parity[0],
            "b": args.loss_parity[1],
            "overrides": args.overrides,
        }
        parity.update(loss_parity(results[0]["losses"], results[1]["losses"]))
        print(
            f"\nloss parity over {parity['steps']} steps: max |Δloss| {parity['max_abs_diff']:.4f}, "
            f"mean |Δloss| {parity['mean_abs_diff']:.4f} (A's own step-to-step change: "
            f"{parity['a_step_to_step_mean_abs']:.4f}); final loss A {results[0]['final_loss']:.4f}, "
            f"B {results[1]['final_loss']:.4f}"
        )
        _emit(parity, args.json_out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
