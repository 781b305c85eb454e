"""Peak memory and time of the loss head: torchtune 0.6.1's chunked path vs our LinearCrossEntropyLoss.

    python benchmarks/linear_ce.py [--tokens 600] [--dim 4096] [--vocab 128256] [--dtype bf16]

One sample of Llama 3.2 11B Vision at W-2 size by default: ``tokens`` final hidden states (the
first ~4 % are the masked prompt, as in the synthetic W-2 samples), the frozen 4096 × 128,256
output projection (frozen in every shipped 11B config), loss forward + backward to the hidden
states:

* ``stock``: what the 0.6.1 recipe does with ``CEWithChunkedOutputLoss``: the decoder emits
  8 chunks of logits (``model.set_num_output_chunks(8)``), the loss upcasts each to fp32;
* ``ours``: :class:`torchtune_ext.modules.LinearCrossEntropyLoss` on the hidden states.

Each variant runs in its own process on the CPU; memory is the rise of the process's peak
resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` after the inputs exist) over
its resident set before the loss, i.e. what the loss adds at its peak. The losses are printed
so that both can be seen to agree. GPU memory (where the 11B runs) is measured by
``benchmarks/train_11b.py --with linear_ce`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from readme_tables import markdown_table, publish, readme_argument  # benchmarks/ is sys.path[0]

REPO = Path(__file__).resolve().parents[1]


def _mib(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1)) / 1024


def run_variant(variant: str, tokens: int, dim: int, vocab: int, dtype_name: str, chunks: int) -> dict:
    """Run one variant's loss forward + backward and measure it (in this process).

    Args:
        variant (str): ``stock`` or ``ours``.
        tokens (int): positions in the sample.
        dim (int): hidden size.
        vocab (int): vocabulary size.
        dtype_name (str): ``bf16`` or ``fp32``.
        chunks (int): output chunks (both variants).

    Returns:
        dict: variant, loss, seconds, and the peak MiB the loss added.
    """
    import torch
    import torch.nn.functional as F
    from torchtune.modules.loss import CEWithChunkedOutputLoss

    from torchtune_ext.modules import linear_cross_entropy

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    g = torch.Generator().manual_seed(0)
    # Created in the target dtype directly: no fp32 transient inflates the baseline.
    weight = torch.empty(vocab, dim, dtype=dtype).normal_(0, dim**-0.5, generator=g)
    hidden = torch.empty(1, tokens, dim, dtype=dtype).normal_(generator=g).requires_grad_()
    labels = torch.randint(0, vocab, (1, tokens), generator=g)
    labels[:, : tokens // 25] = -100  # the masked prompt
    torch.mm(hidden[0, :8].detach(), weight[:8].T)  # load kernels before measuring

    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _mib("VmRSS")
    start = time.perf_counter()
    if variant == "stock":
        logits = [F.linear(chunk, weight) for chunk in hidden.chunk(chunks, dim=1)]
        loss = CEWithChunkedOutputLoss(num_output_chunks=chunks)(logits, labels)
        del logits
    else:
        loss = linear_cross_entropy(hidden, weight, labels, num_chunks=chunks)
    loss.backward()
    seconds = time.perf_counter() - start
    return {
        "variant": variant,
        "loss": float(loss),
        "seconds": seconds,
        "peak_added_mib": _mib("VmHWM") - before,
    }


def _sizes_args(args: argparse.Namespace, tokens: int) -> list[str]:
    return ["--tokens", str(tokens), "--dim", str(args.dim), "--vocab", str(args.vocab),
            "--dtype", args.dtype, "--chunks", str(args.chunks)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run both variants in separate processes and print a Markdown table and JSON lines.

    Args:
        argv (list[str] | None): arguments.

    Returns:
        int: exit status.
    """
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tokens", type=int, nargs="+", default=[600, 2400], help="loss tokens per run (one sample: ~600)"
    )
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=128256)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--variant", choices=["stock", "ours"], help=argparse.SUPPRESS)
    readme_argument(p, "linear_ce")
    args = p.parse_args(argv)
    if args.variant:
        sizes = (args.tokens[0], args.dim, args.vocab, args.dtype, args.chunks)
        print(json.dumps(run_variant(args.variant, *sizes)), flush=True)
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    rows = []
    for tokens in args.tokens:
        results = []
        for variant in ("stock", "ours"):
            proc = subprocess.run(
                [sys.executable, __file__, *_sizes_args(args, tokens), "--variant", variant],
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"error: variant {variant} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                return 1
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps({**results[-1], "tokens": tokens, "dim": args.dim, "vocab": args.vocab}))
        stock = results[0]
        for r in results:
            ratio = f" (**{r['peak_added_mib'] / stock['peak_added_mib']:.2f}×**)" if r is not stock else ""
            rows.append([tokens, r["variant"], f"{r['loss']:.5f}", f"{r['peak_added_mib']:.0f}{ratio}",
                         f"{r['seconds']:.2f}"])  # fmt: skip
    table = markdown_table(["tokens", "loss head", "loss", "peak added (MiB)", "time (s, CPU)"], rows) + (
        f"\n\nHidden {args.dim}, vocab {args.vocab}, {args.dtype}, frozen projection, {args.chunks} chunks."
    )
    print(table)
    if args.readme:
        publish(
            args.readme,
            "linear_ce",
            table,
            ["benchmarks/linear_ce.py", *(argv if argv is not None else sys.argv[1:])],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
