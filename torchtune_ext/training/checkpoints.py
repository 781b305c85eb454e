"""Weight directories (``epoch_<k>/``, ``best/``) written whole or not at all.

The configured checkpointer (``FullModelHFCheckpointer``: HF safetensors plus every
non-weight file of the base directory) writes into ``<checkpointer.output_dir>/.staging/``;
the finished directory is then renamed into place (:func:`torchtune_ext.training.atomic.publish_dir`),
so a kill during a save never leaves a half-written ``epoch_<k>/`` or ``best/``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig
from torchtune import config

from torchtune_ext.training.atomic import publish_dir, recover_dir

__all__ = ["STAGING", "WeightsWriter"]

#: Directory inside ``checkpointer.output_dir`` where checkpoints are built.
STAGING = ".staging"


class WeightsWriter:
    """The config's checkpointer, reading the base weights and writing published directories.

    Args:
        cfg_checkpointer (DictConfig): the ``checkpointer`` section (its ``output_dir`` is where
            the published directories go).
        **kwargs (Any): more arguments for the checkpointer.
    """

    def __init__(self, cfg_checkpointer: DictConfig, **kwargs: Any) -> None:
        self.root = Path(cfg_checkpointer.output_dir)
        self.staging = self.root / STAGING
        shutil.rmtree(self.staging, ignore_errors=True)
        for name in ("best",):
            recover_dir(self.root / name)
        self.checkpointer = config.instantiate(cfg_checkpointer, output_dir=str(self.staging), **kwargs)

    def load_checkpoint(self) -> dict[str, Any]:
        """Read the base checkpoint (``checkpointer.checkpoint_dir``).

        Returns:
            dict[str, Any]: torchtune's checkpoint dict (``model`` key).
        """
        return self.checkpointer.load_checkpoint()

    def write(
        self,
        state: dict[str, Any],
        name: str,
        *,
        epoch: int,
        adapter_only: bool = False,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> Path:
        """Write a checkpoint dict as the directory ``<root>/<name>`` and publish it.

        Args:
            state (dict[str, Any]): torchtune's checkpoint dict (``model``; ``adapter``,
                ``adapter_config`` for LoRA); the checkpointer converts it in place.
            name (str): the directory, e.g. ``epoch_0`` or ``best``.
            epoch (int): the epoch it belongs to.
            adapter_only (bool): save the adapter only (LoRA ``save_adapter_weights_only``).
            extra (Optional[Mapping[str, Any]]): JSON files to add, ``{file name: object}``.

        Returns:
            Path: the published directory.
        """
        built = self.staging / f"epoch_{epoch}"
        shutil.rmtree(built, ignore_errors=True)
        kwargs = {"adapter_only": True} if adapter_only else {}
        self.checkpointer.save_checkpoint(state, epoch=epoch, intermediate_checkpoint=False, **kwargs)
        for file_name, obj in (extra or {}).items():
            (built / file_name).write_text(json.dumps(obj, indent=2) + "\n")
        dest = self.root / name
        publish_dir(built, dest)
        with contextlib.suppress(OSError):  # empty between saves
            self.staging.rmdir()
        return dest
