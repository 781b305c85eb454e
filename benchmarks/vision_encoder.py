"""Cost of the reference-semantics vision encoder vs torchtune 0.6.1's, same weights, same run.

    python benchmarks/vision_encoder.py              # tiny encoder, CPU
    python benchmarks/vision_encoder.py --size 11b --device cuda --dtype bfloat16

Times forward+backward of the encoder for a batch of images with a given tile count. Ours always runs
``max_num_tiles`` tiles per image, pads each tile to a multiple of 8 tokens and uses an additive
attention mask (no flash kernel); the stock encoder runs only the batch's tiles, unpadded, unmasked.
Reports CPU time next to wall time (shared machines) and the ours/stock ratio.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from readme_tables import markdown_table, publish, readme_argument
from torchtune.models.llama3_2_vision._encoder import Llama3VisionEncoder

from torchtune_ext.models.llama3_2_vision import LLAMA_11B, TINY, llama3_2_vision_encoder


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=["tiny", "11b"], default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch", type=int, default=4, help="images per batch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1 keeps shared-box timings stable)")
    readme_argument(p, "vision_encoder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    arch = TINY if args.size == "tiny" else LLAMA_11B
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    ours = llama3_2_vision_encoder(**arch.encoder_kwargs()).to(args.device, dtype)
    stock = Llama3VisionEncoder(clip=ours.clip, projection_head=ours.projection)  # same modules
    rows = []
    for h, w in ([1, 1], [1, 2], [2, 2]):
        n = h * w
        images = torch.randn(
            args.batch, 1, n, 3, arch.tile_size, arch.tile_size, device=args.device, dtype=dtype
        )
        ratio = torch.tensor([[[h, w]]] * args.batch, device=args.device)

        def step(model: torch.nn.Module, images: torch.Tensor = images, ratio: torch.Tensor = ratio) -> None:
            model(images, ratio).float().square().mean().backward()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        s_wall, s_cpu = _time(lambda: step(stock), args.repeats)
        o_wall, o_cpu = _time(lambda: step(ours), args.repeats)
        rows.append(
            [
                n,
                f"{s_wall:.3f}",
                f"{o_wall:.3f}",
                f"**{o_wall / s_wall:.2f}×**",
                f"{s_cpu:.3f}",
                f"{o_cpu:.3f}",
            ]
        )
    table = markdown_table(
        ["tiles per image", "stock wall s", "ours wall s", "ours / stock", "stock CPU s", "ours CPU s"], rows
    ) + (
        f"\n\n{args.size} encoder, {args.device} {args.dtype}, {args.threads} thread(s), batch {args.batch}, "
        f"forward + backward, median of {args.repeats}."
    )
    print(table)
    if args.readme:
        publish(
            args.readme,
            "vision_encoder",
            table,
            ["benchmarks/vision_encoder.py", *(argv if argv is not None else sys.argv[1:])],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
