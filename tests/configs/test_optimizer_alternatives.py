"""torchao AdamW8bit as a drop-in for the reference's bitsandbytes 8-bit AdamW (config snippet).

``optimizer: {_component_: torchao.optim.AdamW8bit, lr: 2e-5}`` must instantiate the way the
recipe does (one optimizer per parameter with ``optimizer_in_bwd``) and follow fp32 AdamW as
closely as bitsandbytes' 8-bit AdamW does. torchao compiles its update per parameter shape;
the test runs it eagerly (same arithmetic) to stay fast on a CPU.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torchtune import config as tt_config

SNIPPET = OmegaConf.create({"_component_": "torchao.optim.AdamW8bit", "lr": 1e-2, "weight_decay": 0.01})


def _trajectory(make: object, p0: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    param = torch.nn.Parameter(p0.clone())
    optimizer = make([param])  # type: ignore[operator]
    with torch.compiler.set_stance("force_eager"):
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
    return param.detach()


def _relative_deviation(x: torch.Tensor, ref: torch.Tensor, p0: torch.Tensor) -> float:
    return float((x - ref).norm() / (ref - p0).norm())


def test_snippet_instantiates_per_parameter_with_8bit_state() -> None:
    params = [torch.nn.Parameter(torch.randn(64, 256)), torch.nn.Parameter(torch.randn(10))]
    optimizers = {p: tt_config.instantiate(SNIPPET, [p]) for p in params}  # as optimizer_in_bwd does
    with torch.compiler.set_stance("force_eager"):
        for p, optimizer in optimizers.items():
            p.grad = torch.randn_like(p)
            optimizer.step()
    big, small = (optimizers[p].state[p] for p in params)
    assert type(big["exp_avg"]).__name__ == "OptimState8bit"  # 1 byte per value (+ block scales)
    assert type(small["exp_avg"]) is torch.Tensor  # under 4096 values: kept in full precision


def test_follows_fp32_adamw_as_closely_as_bitsandbytes() -> None:
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(64, 256, generator=g)
    grads = [torch.randn(64, 256, generator=g) for _ in range(10)]
    ref = _trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01), p0, grads)
    ao = _trajectory(lambda ps: tt_config.instantiate(SNIPPET, ps), p0, grads)
    ao_dev = _relative_deviation(ao, ref, p0)
    assert ao_dev < 0.03  # 8-bit moments: ~1 % off fp32 AdamW after 10 steps

    bnb = pytest.importorskip("bitsandbytes")
    bnb_dev = _relative_deviation(
        _trajectory(lambda ps: bnb.optim.AdamW8bit(ps, lr=1e-2, weight_decay=0.01), p0, grads), ref, p0
    )
    assert ao_dev < 1.5 * bnb_dev
