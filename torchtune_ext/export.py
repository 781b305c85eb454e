"""Export a torchtune Llama 3.2 Vision fine-tune as a complete, servable Hugging Face directory.

Usage::

    python -m torchtune_ext.export --checkpoint-dir OUTPUT/epoch_4 --base-dir BASE --output-dir DIR

``FullModelHFCheckpointer(model_type=LLAMA3_VISION)`` (torchtune 0.6.1) writes, per epoch,
``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json`` in the Hugging Face
``MllamaForConditionalGeneration`` layout (converted by ``llama3_vision_tune_to_hf``) and copies every
other file under 100 MB of its ``checkpoint_dir`` (config, tokenizer, ...). The LoRA/QLoRA recipes
save the *merged* weights there as well, plus ``adapter_model.pt`` (torchtune format: no PEFT adapter
exists for Llama 3.2 Vision, and vLLM cannot serve an adapter on Mllama anyway), which is not needed
to serve and is left out.

This command gathers into ``DIR``: the weight shards and index of the checkpoint directory,
``config.json``, ``generation_config.json``, ``preprocessor_config.json``, ``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``, the chat template and
``original/tokenizer.model`` (for torchtune), each taken from the checkpoint directory or else from the
base directory. It checks every weight key and shape against ``config.json`` before writing, builds
the result in a temporary sibling directory and renames it into place only when complete, never
writes into (or over) the checkpoint or base directory, and refuses a non-empty ``DIR`` unless
``--force``. What it did is recorded in ``DIR/export_manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "ExportError",
    "ExportResult",
    "REQUIRED_FILES",
    "OPTIONAL_FILES",
    "export_checkpoint",
    "expected_weight_shapes",
    "main",
]

#: Files a server needs besides the weights.
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
#: Copied when present (the chat template may live in ``tokenizer_config.json`` instead).
OPTIONAL_FILES = (
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "original/tokenizer.model",
    "original/params.json",
)
INDEX_NAME = "model.safetensors.index.json"
MANIFEST_NAME = "export_manifest.json"
_IGNORED_REASONS = {
    "adapter_model.pt": "LoRA adapter (torchtune format); the merged weights in the shards include it",
    "adapter_model.safetensors": "LoRA adapter; the merged weights in the shards already contain it",
    "adapter_config.json": "LoRA adapter config; not needed to serve merged weights",
}


class ExportError(Exception):
    """An export cannot proceed; the message is one line that names the file or key at fault."""


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        output_dir (Path): the servable directory.
        sources (dict[str, str]): output file name -> directory it was taken from.
        ignored (dict[str, str]): files of the checkpoint directory left out, with the reason.
        num_tensors (int): weight tensors checked and written.
    """

    output_dir: Path
    sources: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    num_tensors: int = 0


def expected_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Weight names and shapes of an ``MllamaForConditionalGeneration`` checkpoint, from its config.

    The layout is the one of ``meta-llama/Llama-3.2-11B-Vision(-Instruct)`` and of torchtune's
    ``llama3_vision_tune_to_hf`` (``language_model.model.*``, ``language_model.lm_head``,
    ``vision_model.*``, ``multi_modal_projector.*``), which vLLM and transformers load.

    Args:
        config (dict[str, Any]): parsed ``config.json``.

    Returns:
        dict[str, tuple[int, ...]]: key -> shape.

    Raises:
        ExportError: if a field the shapes depend on is missing or inconsistent.
    """
    try:
        text, vision = config["text_config"], config["vision_config"]
        hid, n_layers = text["hidden_size"], text["num_hidden_layers"]
        n_heads, n_kv = text["num_attention_heads"], text["num_key_value_heads"]
        head_dim = text.get("head_dim") or hid // n_heads
        inter, vocab = text["intermediate_size"], text["vocab_size"]
        cross = set(text.get("cross_attention_layers") or [])
        dim, v_layers = vision["hidden_size"], vision["num_hidden_layers"]
        v_global = vision["num_global_layers"]
        v_inter, patch, tile = vision["intermediate_size"], vision["patch_size"], vision["image_size"]
        tiles, channels = vision["max_num_tiles"], vision.get("num_channels", 3)
        n_ratios = len(vision["supported_aspect_ratios"])
        taps = vision["intermediate_layers_indices"]
        out_dim = vision.get("vision_output_dim", dim * (len(taps) + 1))
    except (KeyError, TypeError) as err:
        raise ExportError(f"config.json: missing or malformed field {err}") from err
    if out_dim != dim * (len(taps) + 1):
        raise ExportError(
            f"config.json: vision_output_dim={out_dim} but hidden_size*(len(intermediate_layers_indices)+1)"
            f"={dim * (len(taps) + 1)}"
        )
    tokens = (tile // patch) ** 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "language_model.model.embed_tokens.weight": (vocab + 8, hid),
        "language_model.model.norm.weight": (hid,),
        "language_model.lm_head.weight": (vocab, hid),
        "multi_modal_projector.weight": (hid, out_dim),
        "multi_modal_projector.bias": (hid,),
        "vision_model.patch_embedding.weight": (dim, channels, patch, patch),
        "vision_model.class_embedding": (dim,),
        "vision_model.gated_positional_embedding.embedding": (tokens, dim),
        "vision_model.gated_positional_embedding.gate": (1,),
        "vision_model.gated_positional_embedding.tile_embedding.weight": (n_ratios + 1, tiles * tokens * dim),
        "vision_model.layernorm_pre.weight": (dim,),
        "vision_model.layernorm_pre.bias": (dim,),
        "vision_model.layernorm_post.weight": (dim,),
        "vision_model.layernorm_post.bias": (dim,),
    }
    for name in ("pre_tile_positional_embedding", "post_tile_positional_embedding"):
        shapes[f"vision_model.{name}.embedding.weight"] = (n_ratios + 1, tiles * dim)
        shapes[f"vision_model.{name}.gate"] = (1,)
    for i in range(n_layers):
        pre = f"language_model.model.layers.{i}."
        attn = "cross_attn" if i in cross else "self_attn"
        shapes[pre + f"{attn}.q_proj.weight"] = (n_heads * head_dim, hid)
        shapes[pre + f"{attn}.k_proj.weight"] = (n_kv * head_dim, hid)
        shapes[pre + f"{attn}.v_proj.weight"] = (n_kv * head_dim, hid)
        shapes[pre + f"{attn}.o_proj.weight"] = (hid, n_heads * head_dim)
        if i in cross:
            shapes[pre + "cross_attn.q_norm.weight"] = (head_dim,)
            shapes[pre + "cross_attn.k_norm.weight"] = (head_dim,)
            shapes[pre + "cross_attn_attn_gate"] = (1,)
            shapes[pre + "cross_attn_mlp_gate"] = (1,)
        shapes[pre + "input_layernorm.weight"] = (hid,)
        shapes[pre + "post_attention_layernorm.weight"] = (hid,)
        shapes[pre + "mlp.gate_proj.weight"] = (inter, hid)
        shapes[pre + "mlp.up_proj.weight"] = (inter, hid)
        shapes[pre + "mlp.down_proj.weight"] = (hid, inter)
    for stack, count in (("transformer", v_layers), ("global_transformer", v_global)):
        for i in range(count):
            pre = f"vision_model.{stack}.layers.{i}."
            for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                shapes[pre + f"self_attn.{proj}.weight"] = (dim, dim)
            shapes[pre + "mlp.fc1.weight"] = (v_inter, dim)
            shapes[pre + "mlp.fc1.bias"] = (v_inter,)
            shapes[pre + "mlp.fc2.weight"] = (dim, v_inter)
            shapes[pre + "mlp.fc2.bias"] = (dim,)
            for norm in ("input_layernorm", "post_attention_layernorm"):
                shapes[pre + f"{norm}.weight"] = (dim,)
                shapes[pre + f"{norm}.bias"] = (dim,)
            if stack == "global_transformer":
                shapes[pre + "gate_attn"] = (1,)
                shapes[pre + "gate_ffn"] = (1,)
    return shapes


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: cannot read JSON ({err})") from err


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _check_output_dir(output_dir: Path, protected: list[Path], force: bool) -> None:
    for src in protected:
        if _is_within(output_dir, src) or _is_within(src, output_dir):
            raise ExportError(
                f"--output-dir {output_dir} overlaps the source directory {src}; "
                "the export never writes into or over its sources"
            )
    if output_dir.exists():
        if not output_dir.is_dir():
            raise ExportError(f"--output-dir {output_dir} exists and is not a directory")
        if any(output_dir.iterdir()) and not force:
            raise ExportError(f"--output-dir {output_dir} is not empty; pass --force to replace it")


def _weight_files(checkpoint_dir: Path) -> tuple[list[str], Optional[dict[str, str]]]:
    """Shard names (relative to ``checkpoint_dir``) and the index weight map, if any."""
    index_path = checkpoint_dir / INDEX_NAME
    if index_path.is_file():
        index = _read_json(index_path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ExportError(f"{index_path}: no 'weight_map'")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if not (checkpoint_dir / shard).is_file():
                raise ExportError(f"{checkpoint_dir / shard}: missing (listed in {INDEX_NAME})")
        return shards, weight_map
    shards = sorted(p.name for p in checkpoint_dir.glob("model*.safetensors"))
    if shards:
        return shards, None
    if (checkpoint_dir / "adapter_model.pt").is_file():
        raise ExportError(
            f"{checkpoint_dir}: only adapter_model.pt, no merged model-*.safetensors; re-run the LoRA recipe "
            "with save_adapter_weights_only: False so torchtune saves the merged weights"
        )
    if any(checkpoint_dir.glob("*.bin")) or any(checkpoint_dir.glob("*.pt")):
        raise ExportError(f"{checkpoint_dir}: weights are not safetensors; save with safe_serialization True")
    raise ExportError(f"{checkpoint_dir}: no model weights (model*.safetensors)")


def _check_weights(
    checkpoint_dir: Path, shards: list[str], weight_map: Optional[dict[str, str]], config: dict[str, Any]
) -> int:
    from safetensors import safe_open

    expected = expected_weight_shapes(config)
    found: dict[str, tuple[tuple[int, ...], str]] = {}
    for shard in shards:
        try:
            with safe_open(str(checkpoint_dir / shard), framework="pt") as handle:
                for key in handle.keys():
                    found[key] = (tuple(handle.get_slice(key).get_shape()), shard)
        except Exception as err:  # safetensors raises several error types for a damaged file
            raise ExportError(f"{checkpoint_dir / shard}: unreadable safetensors file ({err})") from err
    for key, (shape, shard) in sorted(found.items()):
        if key not in expected:
            raise ExportError(f"{shard}: unexpected weight {key!r} (not in a Mllama model of config.json)")
        if shape != expected[key]:
            raise ExportError(
                f"{shard}: weight {key!r} has shape {list(shape)}, config.json implies {list(expected[key])}"
            )
        if weight_map is not None and weight_map.get(key) != shard:
            raise ExportError(f"{INDEX_NAME}: maps {key!r} to {weight_map.get(key)!r} but it is in {shard}")
    missing = sorted(set(expected) - set(found))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ExportError(f"{checkpoint_dir}: weight {missing[0]!r} missing from the shards{more}")
    if weight_map is not None:
        stale = sorted(set(weight_map) - set(found))
        if stale:
            raise ExportError(f"{INDEX_NAME}: lists {stale[0]!r}, which no shard contains")
    return len(found)


def _check_config(config: Any, path: Path) -> None:
    if not isinstance(config, dict) or config.get("model_type") != "mllama":
        raise ExportError(f"{path}: model_type is not 'mllama' (not a Llama 3.2 Vision checkpoint)")


def _check_tokenizer(tokenizer_json: Path, config: dict[str, Any]) -> None:
    image_id = config.get("image_token_index")
    added = _read_json(tokenizer_json).get("added_tokens", [])
    ids = {tok.get("content"): tok.get("id") for tok in added if isinstance(tok, dict)}
    if ids.get("<|image|>") != image_id:
        raise ExportError(
            f"{tokenizer_json}: <|image|> has id {ids.get('<|image|>')}, "
            f"config.json image_token_index={image_id}"
        )


def _has_chat_template(chosen: dict[str, Path]) -> bool:
    if "chat_template.jinja" in chosen or "chat_template.json" in chosen:
        return True
    tok_cfg = _read_json(chosen["tokenizer_config.json"])
    return isinstance(tok_cfg, dict) and bool(tok_cfg.get("chat_template"))


def _source_dir(name: str, path: Path) -> str:
    # ``original/tokenizer.model`` comes from <dir>/original/: report <dir>.
    return str(path.parents[name.count("/")])


def export_checkpoint(
    checkpoint_dir: Path | str,
    output_dir: Path | str,
    base_dir: Optional[Path | str] = None,
    *,
    force: bool = False,
    chat_template: Optional[Path | str] = None,
) -> ExportResult:
    """Assemble a servable HF directory from a torchtune epoch directory.

    Args:
        checkpoint_dir (Path | str): ``output_dir/epoch_N`` of a torchtune recipe (full, LoRA or QLoRA).
        output_dir (Path | str): directory to create.
        base_dir (Optional[Path | str]): the checkpoint the fine-tune started from; supplies the
            non-weight files the epoch directory lacks.
        force (bool): replace a non-empty ``output_dir`` (never a source directory).
        chat_template (Optional[Path | str]): a Jinja chat template to ship as ``chat_template.jinja``
            (for bases without one).

    Returns:
        ExportResult: what was written.

    Raises:
        ExportError: with a one-line reason naming the file or key, before anything is written.
    """
    ckpt = Path(checkpoint_dir).resolve()
    out = Path(output_dir).resolve()
    base = Path(base_dir).resolve() if base_dir is not None else None
    if not ckpt.is_dir():
        raise ExportError(f"--checkpoint-dir {ckpt}: not a directory")
    if base is not None and not base.is_dir():
        raise ExportError(f"--base-dir {base}: not a directory")
    template = Path(chat_template).resolve() if chat_template is not None else None
    if template is not None and not template.is_file():
        raise ExportError(f"--chat-template {template}: not a file")
    _check_output_dir(out, [p for p in (ckpt, base) if p is not None], force)

    shards, weight_map = _weight_files(ckpt)
    search = [ckpt] + ([base] if base is not None else [])
    chosen: dict[str, Path] = {}
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        for src in search:
            if (src / name).is_file():
                chosen[name] = src / name
                break
        else:
            if name in REQUIRED_FILES:
                where = " or ".join(str(s) for s in search)
                hint = "" if base is not None else " (pass --base-dir with the checkpoint you fine-tuned)"
                raise ExportError(f"{name}: not found in {where}{hint}")
    if template is not None:
        chosen["chat_template.jinja"] = template
    config = _read_json(chosen["config.json"])
    _check_config(config, chosen["config.json"])
    if not _has_chat_template(chosen):
        raise ExportError(
            f"no chat template: {chosen['tokenizer_config.json']} has no 'chat_template' and there is no "
            "chat_template.jinja/chat_template.json; pass --chat-template FILE"
        )
    _check_tokenizer(chosen["tokenizer.json"], config)
    num_tensors = _check_weights(ckpt, shards, weight_map, config)

    result = ExportResult(output_dir=out, num_tensors=num_tensors)
    for name in shards + ([INDEX_NAME] if weight_map is not None else []):
        chosen[name] = ckpt / name
    for path in sorted(ckpt.iterdir()):
        if path.name not in chosen and path.name not in ("original",):
            result.ignored[path.name] = _IGNORED_REASONS.get(path.name, "not needed to serve")
    result.sources = {name: _source_dir(name, path) for name, path in chosen.items()}

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name, path in chosen.items():
            dest = staging / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        manifest = {
            "checkpoint_dir": str(ckpt),
            "base_dir": str(base) if base is not None else None,
            "files": result.sources,
            "ignored": result.ignored,
            "num_tensors": num_tensors,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point.

    Args:
        argv (Optional[list[str]]): arguments (default ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 2 refused).
    """
    parser = argparse.ArgumentParser(
        prog="python -m torchtune_ext.export",
        description=(
            "Turn a torchtune Llama 3.2 Vision epoch directory (full, LoRA or QLoRA fine-tune) into a "
            "complete Hugging Face directory that vLLM and `transformers serve` load."
        ),
    )
    parser.add_argument("--checkpoint-dir", required=True, type=Path, help="the recipe's output_dir/epoch_N")
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="the checkpoint you fine-tuned from; supplies config/tokenizer/processor files missing above",
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="directory to create")
    parser.add_argument(
        "--force", action="store_true", help="replace a non-empty --output-dir (never a source directory)"
    )
    parser.add_argument(
        "--chat-template", type=Path, default=None, help="Jinja chat template file, for bases without one"
    )
    args = parser.parse_args(argv)
    try:
        result = export_checkpoint(
            args.checkpoint_dir,
            args.output_dir,
            args.base_dir,
            force=args.force,
            chat_template=args.chat_template,
        )
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, src in sorted(result.sources.items()):
        print(f"  {name:<40} from {src}")
    for name, why in sorted(result.ignored.items()):
        print(f"  {name:<40} left out: {why}")
    print(f"exported {result.num_tensors} tensors to {result.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
