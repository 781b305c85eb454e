"""What a recipe needs to continue a run exactly where it stopped, and how it stops cleanly.

The resume state is one file, ``output_dir/recipe_state/recipe_state.pt``, written atomically
(:func:`torchtune_ext.training.atomic.atomic_torch_save`) at every save point: the trained
parameters (only those with ``requires_grad``: the frozen rest comes from the base checkpoint
again), the optimizer, the dataloader position, the step counters, every random number
generator, the keep-best bookkeeping and the config. ``resume_from_checkpoint=True`` on the
same command reads it; nothing else needs editing.

SIGTERM and SIGINT (Ctrl-C) ask for a clean stop: the run finishes its optimizer step, saves
the resume state and exits with status 143 (SIGTERM) or 130 (SIGINT). A second Ctrl-C stops at
once. After a SIGKILL the run continues from the last save point.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from torchtune_ext.training.atomic import atomic_torch_save
from torchtune_ext.training.config_check import ConfigError

__all__ = [
    "RESUME_STATE",
    "GracefulStop",
    "check_resumable",
    "clear_previous_run",
    "get_rng_state",
    "load_resume_state",
    "save_resume_state",
    "set_rng_state",
    "trainable_state_dict",
]

#: Path of the resume state inside ``output_dir``.
RESUME_STATE = Path("recipe_state") / "recipe_state.pt"

#: Keys that fix which samples each step sees: a resumed run must not change them.
DATA_ORDER_KEYS = (
    "dataset",
    "shuffle",
    "seed",
    "batch_size",
    "gradient_accumulation_steps",
    "max_steps_per_epoch",
)


def get_rng_state(device: torch.device) -> dict[str, Any]:
    """Every random number generator a training step can draw from.

    Args:
        device (torch.device): the training device.

    Returns:
        dict[str, Any]: torch CPU, CUDA (on GPU), Python ``random`` and NumPy states.
    """
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore :func:`get_rng_state`'s generators.

    Args:
        state (Mapping[str, Any]): from :func:`get_rng_state`.
        device (torch.device): the training device.
    """
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _storage(t: torch.Tensor) -> Optional[int]:
    t = getattr(t, "_local_tensor", t)  # an FSDP2 shard: its local tensor
    try:
        return t.untyped_storage().data_ptr() if t.numel() else None
    except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
        return None


def trainable_state_dict(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The entries of a full (CPU) model state dict that are not frozen parameters.

    An entry is left out when the model's own state dict serves it straight from a frozen
    parameter; anything else (trained parameters, buffers, entries that state-dict hooks
    assemble, such as a fusion embedding's combined table) is kept, so loading the result over
    the base checkpoint restores the trained model exactly.

    Args:
        model (torch.nn.Module): the model (its ``requires_grad`` flags decide; FSDP2 shards too).
        state_dict (Mapping[str, torch.Tensor]): its full state dict, same keys.

    Returns:
        dict[str, torch.Tensor]: the entries to save.
    """
    frozen = {_storage(p) for p in model.parameters() if not p.requires_grad} - {None}
    live = model.state_dict()
    keep = {k for k, v in live.items() if _storage(v) is None or _storage(v) not in frozen}
    return {k: v for k, v in state_dict.items() if k in keep}


def save_resume_state(output_dir: Path, state: Mapping[str, Any]) -> Path:
    """Write the resume state atomically.

    Args:
        output_dir (Path): the run's output directory.
        state (Mapping[str, Any]): everything the recipe needs to continue.

    Returns:
        Path: the file.
    """
    path = Path(output_dir) / RESUME_STATE
    atomic_torch_save(dict(state), path)
    return path


def load_resume_state(output_dir: Path) -> dict[str, Any]:
    """Read the resume state of a run.

    Args:
        output_dir (Path): the run's output directory.

    Returns:
        dict[str, Any]: what :func:`save_resume_state` wrote.

    Raises:
        ConfigError: if there is none (the run never reached a save point).
    """
    path = Path(output_dir) / RESUME_STATE
    if not path.is_file():
        raise ConfigError(
            f"resume_from_checkpoint=True but {path} does not exist: this output_dir has no saved run "
            "to continue (run without resume_from_checkpoint to start it)"
        )
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def check_resumable(saved_cfg: Mapping[str, Any], cfg: DictConfig) -> list[str]:
    """Compare the saved run's config with this one's.

    Args:
        saved_cfg (Mapping[str, Any]): the config stored in the resume state (resolved).
        cfg (DictConfig): this run's config.

    Returns:
        list[str]: the other top-level keys that changed (the recipe warns about them).

    Raises:
        ConfigError: if a key that fixes the data order changed (the steps would not line up).
    """
    now = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(now, dict)
    changed = sorted(
        k
        for k in set(saved_cfg) | set(now)
        if saved_cfg.get(k) != now.get(k) and k != "resume_from_checkpoint"
    )
    fatal = [k for k in changed if k in DATA_ORDER_KEYS]
    if fatal:
        shown = ", ".join(f"{k}: {saved_cfg.get(k)!r} -> {now.get(k)!r}" for k in fatal)
        raise ConfigError(f"resume_from_checkpoint: the saved run used other data order settings ({shown})")
    return changed


def clear_previous_run(output_dir: Path, checkpoint_dir: Optional[Path] = None) -> list[Path]:
    """Remove what an earlier run left in ``output_dir`` that a new run must not inherit.

    A run started without ``resume_from_checkpoint`` starts over: an earlier run's resume state,
    ``best/`` (which it might never beat), validations and ``metrics.jsonl`` would be mistaken
    for its own. ``epoch_<k>/`` directories are replaced as the new run writes them, as in torchtune.

    Args:
        output_dir (Path): the run's output directory.
        checkpoint_dir (Optional[Path]): ``checkpointer.output_dir`` if different.

    Returns:
        list[Path]: what was removed.
    """
    import logging
    import shutil

    output_dir = Path(output_dir)
    roots = {output_dir, Path(checkpoint_dir or output_dir)}
    stale = [output_dir / "metrics.jsonl", output_dir / "validation", output_dir / "plots"]
    stale += [root / name for root in roots for name in ("best", ".best.old", RESUME_STATE.parent)]
    removed = [p for p in stale if p.exists()]
    for p in removed:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if removed:
        logging.getLogger(__name__).warning(
            "starting over in %s (no resume_from_checkpoint): removed %s of an earlier run",
            output_dir, ", ".join(p.name for p in removed),
        )  # fmt: skip
    return removed


class GracefulStop:
    """Turns SIGTERM/SIGINT into a request to stop at the next optimizer-step boundary.

    Use as a context manager around the training loop; :attr:`signal` is the first signal
    received (None if none). A second SIGINT raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    @property
    def exit_status(self) -> int:
        """int: the shell's status for the signal (128 + number), 0 when none arrived."""
        return 128 + self.signal if self.signal is not None else 0

    def requested(self, world_size: int = 1, device: Optional[torch.device] = None) -> bool:
        """Whether a stop was asked for (on any rank, when distributed: a collective call).

        Args:
            world_size (int): processes in the run.
            device (Optional[torch.device]): the device of the collective.

        Returns:
            bool: stop now.
        """
        if world_size == 1:
            return self.signal is not None
        flag = torch.tensor([0 if self.signal is None else self.signal], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if self.signal is None and int(flag.item()):
            self.signal = int(flag.item())
        return self.signal is not None

    @contextmanager
    def installed(self) -> Iterator[GracefulStop]:
        """Install the handlers for the block (main thread only), restoring the previous ones.

        Yields:
            GracefulStop: this object.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
