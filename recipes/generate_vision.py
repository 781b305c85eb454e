"""Greedy answers from a Llama 3.2 Vision checkpoint, one per image or dataset row, as JSON lines.

A single-file torchtune-style recipe. Run it as a script (it parses its own config, like every
torchtune recipe), or with torchtune's CLI from any directory (this folder installs as
``torchtune_ext.recipes``; ``tune run recipes/...`` would find torchtune's own ``recipes``)::

    python recipes/generate_vision.py --config configs/tiny/generate.yaml \\
        checkpoint_dir=out/tiny_full_w2/epoch_0 'images=[form1.png,form2.png]'
    tune run torchtune_ext/recipes/generate_vision.py --config configs/tiny/generate.yaml \\
        split=out/w2_synth_train30_test70/test limit=2

The prompt is the task's (``task``: a name of the registry in :mod:`eval.tasks`, with
``task_options`` such as ``{labels: data/cars/labels.txt}`` for classification) unless
``prompt`` is set. ``images`` lists image files; ``split`` instead names a dataset split the
task's reader reads (what ``python -m eval.<task> --dataset`` takes), whose first ``limit``
rows are answered with each row's own prompt (so DocVQA's questions work too). Prints
``{"image": ..., "prompt": ..., "answer": ...}`` per image (``"id"`` instead of ``"image"`` for a
split row) and writes them to ``output_file`` if set. A missing image, an unusable one or a
bad split is one ``error:`` line (exit status 2) before the model is loaded.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torchtune import config, training, utils

from eval.core.images import ImageError
from eval.core.records import open_upright
from eval.tasks import get_task
from torchtune_ext.generation import greedy_generate, user_message

logger = utils.get_logger("INFO")


class VisionGenerationRecipe:
    """Load a model through its checkpointer and answer one prompt about each image.

    Args:
        cfg (DictConfig): the recipe config (``model``, ``tokenizer``, ``checkpointer``,
            ``device``, ``dtype``, ``task`` and ``task_options`` or ``prompt``, ``images`` or
            ``split`` and ``limit``, ``max_new_tokens``, ``output_file``).
    """

    def __init__(self, cfg: DictConfig) -> None:
        self._device = utils.get_device(device=cfg.device)
        self._dtype = training.get_dtype(dtype=cfg.dtype, device=self._device)
        training.set_seed(seed=cfg.get("seed", 0))

    def setup(self, cfg: DictConfig) -> None:
        """Instantiate the transform and the model, and load the checkpoint.

        Args:
            cfg (DictConfig): the recipe config.
        """
        self._inputs = self._read_inputs(cfg)  # before the model: fail fast
        checkpointer = config.instantiate(cfg.checkpointer)
        state_dict = checkpointer.load_checkpoint()[training.MODEL_KEY]
        with training.set_default_dtype(self._dtype), self._device:
            self._model = config.instantiate(cfg.model)
        self._model.load_state_dict(state_dict, strict=True)
        self._model.eval()
        self._transform = config.instantiate(cfg.tokenizer)

    @staticmethod
    def _read_inputs(cfg: DictConfig) -> list[tuple[dict[str, Any], bytes | str, str]]:
        """``(key, image, prompt)`` per answer to give (key: ``{"id": row}`` or ``{"image": path}``),
        every image checked.

        Raises:
            ValueError: if neither or both of ``images`` and ``split`` are set, if an image is
                missing or unusable, if the split cannot be read, or if the task has no prompt of
                its own and neither ``prompt`` nor a split gives one (each message one line).
        """
        images, split = list(cfg.get("images") or []), cfg.get("split")
        if bool(images) == bool(split):
            raise ValueError("set either `images` (image files) or `split` (a dataset split), not both")
        task = get_task(cfg.task).from_options(**dict(cfg.get("task_options") or {}))
        prompt = cfg.get("prompt")
        if split:
            try:
                rows = task.load(split)
                limit = cfg.get("limit")
                count = len(rows) if limit is None or limit <= 0 else min(int(limit), len(rows))
                samples = [task.sample(rows.row(i), i) for i in range(count)]
            except (ValueError, OSError) as exc:  # the readers' one-line errors
                raise ValueError(f"split {split}: {exc}") from None
            return [({"id": s.id}, s.image, prompt or s.prompt) for s in samples]
        prompt = prompt or task.instruction()
        if prompt is None:
            raise ValueError(
                f"task {cfg.task!r} has no prompt of its own (it asks per row); set `prompt` or use `split`"
            )
        for path in images:
            try:
                open_upright(path)
            except ImageError as exc:
                raise ValueError(f"image {path}: {exc}") from None
        return [({"image": str(path)}, str(path), prompt) for path in images]

    def generate(self, cfg: DictConfig) -> list[dict[str, str]]:
        """Answer each image's or split row's prompt.

        Args:
            cfg (DictConfig): the recipe config.

        Returns:
            list[dict[str, str]]: ``{"image" or "id", "prompt", "answer"}`` per input, in order.
        """
        results = []
        for key, image, prompt in self._inputs:
            # as training shows images: EXIF orientation applied, transparency on white
            message = user_message(open_upright(image), prompt)
            t0 = time.perf_counter()
            ids = greedy_generate(
                self._model,
                self._transform,
                [message],
                max_new_tokens=cfg.max_new_tokens,
                device=self._device,
                dtype=self._dtype,
            )
            answer = self._transform.decode(ids)
            logger.info(f"{next(iter(key.values()))}: {len(ids)} tokens in {time.perf_counter() - t0:.2f}s")
            results.append({**key, "prompt": prompt, "answer": answer})
            print(json.dumps(results[-1], ensure_ascii=False), flush=True)
        if cfg.get("output_file"):
            out = Path(cfg.output_file)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        return results


@config.parse
def main(cfg: DictConfig) -> int:
    """Recipe entry point.

    Args:
        cfg (DictConfig): the YAML config merged with the command-line overrides.

    Returns:
        int: 0, or 2 after one ``error:`` line for bad input.
    """
    recipe = VisionGenerationRecipe(cfg)
    try:
        recipe.setup(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    recipe.generate(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
