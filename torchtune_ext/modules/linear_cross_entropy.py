"""Linear + cross-entropy fused chunk by chunk, for torchtune 0.6.1 (which has no ``LinearCrossEntropyLoss``).

The stock 0.6.1 path (``CEWithChunkedOutputLoss`` + ``model.set_num_output_chunks``) lets the
model project every position to the vocabulary: all logits of a sample exist at once (in the
model dtype), their fp32 upcasts too, and autograd keeps the fp32 log-softmax of every chunk
alive until backward — about ``6 * tokens * vocab`` bytes in bf16 (0.46 GB for 600 tokens of
Llama 3's 128,256-word vocabulary, per sample).

:class:`LinearCrossEntropyLoss` takes the final hidden states instead, drops positions whose
label is ignored (prompt, image token, padding) before projecting, and for each chunk of the
rest computes logits, the summed cross-entropy and — in the same pass — the gradients with
respect to the hidden states and (if trainable) the projection weight. Only one chunk of
logits exists at any time and nothing of vocabulary size is kept for backward; backward is a
multiplication of the stored gradients by the incoming scalar.

Numerics follow the stock path: logits in the weight's dtype, upcast to fp32 for
log-softmax, gradients cast back to the weight's dtype before the two matmuls. In fp32 the
loss and gradients equal ``CEWithChunkedOutputLoss`` to rounding.

A 0.6.1 recipe uses it with one extra call after instantiating the loss (the stock recipes
do not make it)::

    self._loss_fn = config.instantiate(cfg.loss)
    if hasattr(self._loss_fn, "set_model_output"):
        self._loss_fn.set_model_output(self._model)

``set_model_output`` swaps the decoder's ``output`` projection for a pass-through that keeps
the same weight ``Parameter`` under the same name (``decoder.output.weight``), so the model
returns hidden states, checkpoints load and save unchanged and optimizer hooks stay attached.
Generation during training (a recipe's validation) needs logits again: inside
:func:`model_logits` the pass-through projects, on the same weight (FSDP shards included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn

__all__ = ["LinearCrossEntropyLoss", "SkippedOutputProjection", "linear_cross_entropy", "model_logits"]


class SkippedOutputProjection(nn.Module):
    """Stands in for a decoder's output projection and returns its input unchanged.

    Holds the projection's ``weight`` (the same ``Parameter`` object), so state-dict keys,
    ``requires_grad`` and any hooks registered on it are unchanged.

    Args:
        linear (nn.Linear): the projection being skipped; must have no bias.

    Raises:
        TypeError: if ``linear`` is not a plain ``nn.Linear`` without bias.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if type(linear) is not nn.Linear or linear.bias is not None:
            raise TypeError(
                f"LinearCrossEntropyLoss needs the decoder output to be a bias-free nn.Linear, "
                f"got {type(linear).__name__}"
                + (" with bias" if isinstance(linear, nn.Linear) and linear.bias is not None else "")
                + " (an adapter on the output projection, apply_lora_to_output, is not supported)"
            )
        self.weight = linear.weight
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        #: When True (inside :func:`model_logits`), project to logits like the original linear.
        self.project = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the hidden states as they are (logits when :attr:`project` is set).

        Args:
            x (torch.Tensor): hidden states ``[..., embed_dim]``.

        Returns:
            torch.Tensor: ``x``, or ``x @ weight.T`` when projecting.
        """
        return nn.functional.linear(x, self.weight) if self.project else x


@contextmanager
def model_logits(model: nn.Module) -> Iterator[None]:
    """Make a model return full, unchunked logits inside the block, whatever its loss set up.

    Undoes for the duration what :meth:`LinearCrossEntropyLoss.set_model_output` (hidden
    states) or ``set_num_output_chunks`` (a list of logit chunks, for
    ``CEWithChunkedOutputLoss``) changed, and restores it on exit.

    Args:
        model (nn.Module): a ``TransformerDecoder`` or a fusion model with ``.decoder``.

    Yields:
        None: while the model returns ``[b, s, vocab]`` logits.
    """
    decoder = getattr(model, "decoder", model)
    chunks = getattr(decoder, "num_output_chunks", 0)
    output = getattr(decoder, "output", None)
    skipped = isinstance(output, SkippedOutputProjection)
    decoder.num_output_chunks = 0
    if skipped:
        output.project = True
    try:
        yield
    finally:
        decoder.num_output_chunks = chunks
        if skipped:
            output.project = False


class _LinearCrossEntropyFunction(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T``; gradients computed chunk by chunk in forward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        num_chunks: int,
    ) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        rows = hidden.shape[0]
        step = max(1, -(-rows // num_chunks))
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            h, t = hidden[start:stop], targets[start:stop]
            logits = (h @ weight.T).float()  # one chunk: [n, vocab]
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if need_hidden or need_weight:
                # d(sum CE)/d(logits) = softmax - one_hot, built in place over the logits.
                grad_logits = logits.sub_(lse[:, None]).exp_()
                grad_logits[torch.arange(t.shape[0], device=t.device), t] -= 1.0
                grad_logits = grad_logits.to(weight.dtype)
                if need_hidden:
                    torch.mm(grad_logits, weight, out=grad_hidden[start:stop])
                if need_weight:
                    grad_weight.addmm_(grad_logits.T, h)
            del logits
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.to(torch.float32)
        return (
            None if grad_hidden is None else (grad_hidden * scale).to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * scale).to(grad_weight.dtype),
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    num_chunks: int = 8,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets`` without full logits.

    Args:
        hidden (torch.Tensor): final hidden states ``[..., embed_dim]`` (any float dtype; cast
            to ``weight``'s dtype, as the projection would).
        weight (torch.Tensor): output projection ``[vocab_size, embed_dim]``.
        targets (torch.Tensor): labels ``[...]`` matching ``hidden``'s leading dimensions.
        num_chunks (int): the valid positions are processed in this many chunks.
        ignore_index (int): label of positions that do not count.

    Returns:
        torch.Tensor: scalar fp32 loss, summed over valid positions and divided by their
        number; 0 (with zero gradients) when no position is valid.

    Raises:
        ValueError: if the shapes do not line up.
    """
    if hidden.shape[:-1] != targets.shape or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)} and targets "
            f"{tuple(targets.shape)} do not line up"
        )
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    valid = targets != ignore_index
    count = valid.sum()
    hidden = hidden[valid].to(weight.dtype)
    total = _LinearCrossEntropyFunction.apply(hidden, weight, targets[valid], num_chunks)
    return total / count.clamp(min=1)


class LinearCrossEntropyLoss(nn.Module):
    """Cross-entropy from hidden states and the model's output projection, chunk by chunk.

    Same constructor and ``set_model_output`` as torchtune 0.7's ``LinearCrossEntropyLoss``,
    so a config can name either; see the module docstring for how a 0.6.1 recipe calls it.

    Args:
        num_output_chunks (int): valid positions are projected in this many chunks. Default 8.
        ignore_index (int): label of positions that do not count. Default -100.
    """

    def __init__(self, num_output_chunks: int = 8, ignore_index: int = -100) -> None:
        super().__init__()
        self.num_output_chunks = num_output_chunks
        self.ignore_index = ignore_index
        self._projection: Optional[SkippedOutputProjection] = None

    def set_model_output(self, model: nn.Module) -> None:
        """Make ``model`` return hidden states and take over its output projection.

        Args:
            model (nn.Module): a ``TransformerDecoder`` or a fusion model with ``.decoder``.

        Raises:
            TypeError: if the output projection is not a bias-free ``nn.Linear``.
            ValueError: if the decoder already emits chunked logits (``set_num_output_chunks``).
        """
        decoder = getattr(model, "decoder", model)
        if getattr(decoder, "num_output_chunks", 0):
            raise ValueError(
                "the decoder emits chunked logits (set_num_output_chunks was called); "
                "LinearCrossEntropyLoss needs hidden states"
            )
        if not isinstance(decoder.output, SkippedOutputProjection):
            decoder.output = SkippedOutputProjection(decoder.output)
        # Bypass nn.Module registration: the weight belongs to the model, not to the loss.
        object.__setattr__(self, "_projection", decoder.output)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Compute the mean cross-entropy over positions whose label is not ignored.

        Args:
            outputs (torch.Tensor): hidden states ``[b, s, d]`` or flattened ``[b*s, d]``.
            targets (torch.Tensor): labels ``[b, s]`` or ``[b*s]``.

        Returns:
            torch.Tensor: scalar loss.

        Raises:
            RuntimeError: if called before :meth:`set_model_output`.
        """
        if self._projection is None:
            raise RuntimeError(
                "LinearCrossEntropyLoss: call set_model_output(model) before the first forward"
            )
        return linear_cross_entropy(
            outputs,
            self._projection.weight,
            targets,
            num_chunks=self.num_output_chunks,
            ignore_index=self.ignore_index,
        )
