"""Modules torchtune 0.6.1 lacks: a chunked linear cross-entropy loss."""

from torchtune_ext.modules.linear_cross_entropy import (
    LinearCrossEntropyLoss,
    SkippedOutputProjection,
    linear_cross_entropy,
    model_logits,
)

__all__ = ["LinearCrossEntropyLoss", "SkippedOutputProjection", "linear_cross_entropy", "model_logits"]
