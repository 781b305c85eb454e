"""Keep-best and early-stopping bookkeeping over a run's validations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["BestTracker"]


@dataclass
class BestTracker:
    """Which validation was best so far, and whether training should stop.

    A validation improves on the best when its value beats the best by more than
    ``min_delta`` (``value > best + min_delta`` for ``mode="max"``, ``value < best - min_delta``
    for ``"min"``); the first validation with a value always does. A missing value (no row
    could be scored) never improves. After ``patience`` validations in a row without an
    improvement, :attr:`should_stop` is True.

    Args:
        mode (str): ``max`` (higher is better, every task's headline metric) or ``min``.
        patience (Optional[int]): validations without improvement before stopping; None: never.
        min_delta (float): smallest change that counts as an improvement.

    Raises:
        ValueError: for an unknown mode, a patience below 1 or a negative ``min_delta``.
    """

    mode: str = "max"
    patience: Optional[int] = None
    min_delta: float = 0.0
    best_value: Optional[float] = None
    best_step: Optional[int] = None
    since_best: int = 0
    history: list[tuple[int, Optional[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or null, got {self.patience}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    def update(self, step: int, value: Optional[float]) -> bool:
        """Record one validation.

        Args:
            step (int): its optimizer step.
            value (Optional[float]): the tracked metric (None when it could not be computed).

        Returns:
            bool: True if it is the new best.
        """
        self.history.append((step, value))
        improved = value is not None and (
            self.best_value is None
            or (
                value > self.best_value + self.min_delta
                if self.mode == "max"
                else value < self.best_value - self.min_delta
            )
        )
        if improved:
            self.best_value, self.best_step, self.since_best = value, step, 0
        else:
            self.since_best += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """bool: ``patience`` validations in a row brought no improvement."""
        return self.patience is not None and self.since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """The bookkeeping, for the resume state.

        Returns:
            dict[str, Any]: plain values.
        """
        return {
            "best_value": self.best_value,
            "best_step": self.best_step,
            "since_best": self.since_best,
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s bookkeeping (the settings stay the config's).

        Args:
            state (dict[str, Any]): from :meth:`state_dict`.
        """
        self.best_value = state["best_value"]
        self.best_step = state["best_step"]
        self.since_best = state["since_best"]
        self.history = [(int(s), v) for s, v in state["history"]]
