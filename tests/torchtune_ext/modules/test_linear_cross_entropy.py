"""LinearCrossEntropyLoss equals torchtune 0.6.1's CEWithChunkedOutputLoss path (loss and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX
from torchtune.modules.loss import CEWithChunkedOutputLoss
from torchtune.modules.peft import LoRALinear

from torchtune_ext.models import llama3_2_vision_tiny
from torchtune_ext.modules import LinearCrossEntropyLoss, SkippedOutputProjection, linear_cross_entropy


def _labels(b: int, s: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, vocab, (b, s), generator=generator)
    labels[:, : s // 3] = CROSS_ENTROPY_IGNORE_IDX  # a masked prompt
    labels[1, -5:] = CROSS_ENTROPY_IGNORE_IDX  # padding
    return labels


def _stock(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunks: int) -> torch.Tensor:
    # What the 0.6.1 recipe does: model.set_num_output_chunks(n) + CEWithChunkedOutputLoss(n).
    logits = [F.linear(chunk, weight) for chunk in hidden.chunk(chunks, dim=1)]
    return CEWithChunkedOutputLoss(num_output_chunks=chunks)(logits, labels)


@pytest.mark.parametrize("chunks", [1, 3, 8])
def test_equals_stock_chunked_loss_fp32(chunks: int) -> None:
    g = torch.Generator().manual_seed(0)
    b, s, d, vocab = 2, 37, 16, 101
    hidden = torch.randn(b, s, d, generator=g)
    weight = torch.randn(vocab, d, generator=g) / d**0.5
    labels = _labels(b, s, vocab, g)

    h1, w1 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    stock = _stock(h1, w1, labels, chunks)
    (stock * 7.0).backward()  # the recipe scales the loss by the token count before backward

    h2, w2 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    ours = linear_cross_entropy(h2, w2, labels, num_chunks=chunks)
    (ours * 7.0).backward()

    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h2.grad, h1.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w2.grad, w1.grad, rtol=1e-5, atol=1e-6)


def test_frozen_weight_gets_no_gradient_and_hidden_still_does() -> None:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(1, 10, 8, generator=g, requires_grad=True)
    weight = torch.randn(50, 8, generator=g)
    labels = torch.randint(0, 50, (1, 10), generator=g)
    linear_cross_entropy(hidden, weight, labels).backward()
    assert weight.grad is None
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0


def test_bf16_close_to_stock() -> None:
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 24, 32, generator=g).bfloat16()
    weight = (torch.randn(300, 32, generator=g) / 32**0.5).bfloat16()
    labels = _labels(2, 24, 300, g)
    h1, h2 = hidden.clone().requires_grad_(), hidden.clone().requires_grad_()
    stock, ours = _stock(h1, weight, labels, 8), linear_cross_entropy(h2, weight, labels)
    stock.backward()
    ours.backward()
    torch.testing.assert_close(ours, stock, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(h2.grad.float(), h1.grad.float(), rtol=2e-2, atol=1e-4)


def test_all_positions_ignored_gives_zero_loss_and_gradient() -> None:
    hidden = torch.randn(1, 4, 8, requires_grad=True)
    labels = torch.full((1, 4), CROSS_ENTROPY_IGNORE_IDX)
    loss = linear_cross_entropy(hidden, torch.randn(20, 8), labels)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(hidden.grad, torch.zeros_like(hidden))


def test_on_tiny_model_equals_stock_recipe_path() -> None:
    """set_model_output on the real DeepFusionModel: same loss and trainable-parameter gradients."""
    torch.manual_seed(0)
    stock_model = llama3_2_vision_tiny(decoder_trainable=True)
    ours_model = llama3_2_vision_tiny(decoder_trainable=True)
    ours_model.load_state_dict(stock_model.state_dict())
    keys = list(ours_model.state_dict())

    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 512, (2, 20), generator=g)
    labels = _labels(2, 20, 512, g)

    stock_model.set_num_output_chunks(8)
    stock_loss = CEWithChunkedOutputLoss(num_output_chunks=8)(stock_model(tokens), labels)
    stock_loss.backward()

    loss_fn = LinearCrossEntropyLoss(num_output_chunks=8)
    loss_fn.set_model_output(ours_model)
    assert isinstance(ours_model.decoder.output, SkippedOutputProjection)
    assert list(ours_model.state_dict()) == keys  # checkpoints load and save unchanged
    assert list(loss_fn.parameters()) == []  # the weight stays the model's
    hidden = ours_model(tokens)
    assert hidden.shape == (2, 20, 256)
    # The recipe flattens non-list outputs before calling the loss; both shapes work.
    ours_loss = loss_fn(hidden.reshape(-1, 256), labels.reshape(-1))
    ours_loss.backward()

    torch.testing.assert_close(ours_loss, stock_loss, rtol=1e-5, atol=1e-5)
    stock_grads = dict(stock_model.named_parameters())
    for name, param in ours_model.named_parameters():
        if param.requires_grad:
            ref = stock_grads[name].grad
            torch.testing.assert_close(param.grad, ref, rtol=1e-4, atol=1e-6, msg=name)


def test_rejects_adapter_or_bias_on_output() -> None:
    with pytest.raises(TypeError, match="apply_lora_to_output"):
        SkippedOutputProjection(LoRALinear(8, 16, rank=2, alpha=4))
    with pytest.raises(TypeError, match="with bias"):
        SkippedOutputProjection(nn.Linear(8, 16))
    with pytest.raises(RuntimeError, match="set_model_output"):
        LinearCrossEntropyLoss()(torch.randn(2, 8), torch.zeros(2, dtype=torch.long))


def test_refuses_a_decoder_that_already_chunks_logits() -> None:
    model = llama3_2_vision_tiny()
    model.set_num_output_chunks(8)
    with pytest.raises(ValueError, match="chunked logits"):
        LinearCrossEntropyLoss().set_model_output(model)
