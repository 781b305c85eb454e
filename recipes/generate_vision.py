"""Greedy answers from a Llama 3.2 Vision checkpoint, one per image, as JSON lines.

A single-file torchtune-style recipe. Run it as a script (it parses its own config, like every
torchtune recipe), or with torchtune's CLI from any directory (this folder installs as
``torchtune_ext.recipes``; ``tune run recipes/...`` would find torchtune's own ``recipes``)::

    python recipes/generate_vision.py --config configs/tiny/generate.yaml \\
        checkpoint_dir=out/tiny_full_w2/epoch_0 'images=[form1.png,form2.png]'
    tune run torchtune_ext/recipes/generate_vision.py --config configs/tiny/generate.yaml ...

The prompt is the task's (``task``: a name of the registry in :mod:`eval.tasks`, with
``task_options`` such as ``{labels: data/cars/labels.txt}`` for classification) unless
``prompt`` is set. Prints ``{"image": ..., "prompt": ..., "answer": ...}`` per image and writes them to
``output_file`` if set.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from omegaconf import DictConfig
from torchtune import config, training, utils

from eval.core.records import open_upright
from eval.tasks import get_task
from torchtune_ext.generation import greedy_generate, user_message

logger = utils.get_logger("INFO")


class VisionGenerationRecipe:
    """Load a model through its checkpointer and answer one prompt about each image.

    Args:
        cfg (DictConfig): the recipe config (``model``, ``tokenizer``, ``checkpointer``,
            ``device``, ``dtype``, ``task`` and ``task_options`` or ``prompt``, ``images``,
            ``max_new_tokens``, ``output_file``).
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
        self._prompt = cfg.get("prompt") or self._task_prompt(cfg)  # before the model: fail fast
        checkpointer = config.instantiate(cfg.checkpointer)
        state_dict = checkpointer.load_checkpoint()[training.MODEL_KEY]
        with training.set_default_dtype(self._dtype), self._device:
            self._model = config.instantiate(cfg.model)
        self._model.load_state_dict(state_dict, strict=True)
        self._model.eval()
        self._transform = config.instantiate(cfg.tokenizer)

    @staticmethod
    def _task_prompt(cfg: DictConfig) -> str:
        """The prompt of the registered task ``cfg.task`` built with ``cfg.task_options``.

        Raises:
            ValueError: if the task's prompt depends on the row (e.g. a DocVQA question), naming
                the key to set instead.
        """
        options = dict(cfg.get("task_options") or {})
        prompt = get_task(cfg.task).from_options(**options).instruction()
        if prompt is None:
            raise ValueError(f"task {cfg.task!r} has no prompt of its own (it asks per row); set `prompt`")
        return prompt

    def generate(self, cfg: DictConfig) -> list[dict[str, str]]:
        """Answer the task's prompt (or ``cfg.prompt``) for every image in ``cfg.images``.

        Args:
            cfg (DictConfig): the recipe config.

        Returns:
            list[dict[str, str]]: ``{"image", "prompt", "answer"}`` per image, in order.

        Raises:
            FileNotFoundError: if an image does not exist (named in the message).
            eval.core.images.ImageError: if an image is over the size limit or does not decode.
        """
        results = []
        for path in cfg.images:
            if not Path(path).is_file():
                raise FileNotFoundError(f"image not found: {path}")
            # as training shows images: EXIF orientation applied, transparency on white
            message = user_message(open_upright(path), self._prompt)
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
            logger.info(f"{path}: {len(ids)} tokens in {time.perf_counter() - t0:.2f}s")
            results.append({"image": str(path), "prompt": self._prompt, "answer": answer})
            print(json.dumps(results[-1], ensure_ascii=False), flush=True)
        if cfg.get("output_file"):
            out = Path(cfg.output_file)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        return results


@config.parse
def main(cfg: DictConfig) -> None:
    """Recipe entry point."""
    recipe = VisionGenerationRecipe(cfg)
    recipe.setup(cfg)
    recipe.generate(cfg)


if __name__ == "__main__":
    sys.exit(main())
