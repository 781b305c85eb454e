"""Client-side overhead of the W-2 evaluator per request, against a server that answers at once.

What is timed, per request: reading the row, encoding the image, sending, parsing the answer,
scoring it and writing the result; the server returns a canned completion immediately, so
what remains is the client's own cost (plus the local HTTP round trip, the same for both).

The server runs in its own process (as a real one would), answering from a thread per connection.

* ``ours``: ``eval.core.runner.send_rows`` with the W-2 adapter, exactly as ``python -m eval.w2`` runs it
  (stored image bytes base64-encoded in memory, one JSONL line appended per result).
* ``seed``: the llama-cookbook ``evaluate.py`` approach, reimplemented minimally: decode every
  image from the dataset, write each to a temp PNG, read it back and base64 it, call
  ``chat.completions.create`` (parsed into the SDK's pydantic models), extract JSON with a
  regex, compare by equality, and write all results at the end.

Usage::

    python benchmarks/eval_client_overhead.py [--requests 64] [--repeats 3] [--workers 1 32]

Prints a table of milliseconds per request and the seed/ours ratio (> 1: ours is cheaper).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from readme_tables import markdown_table, publish, readme_argument  # noqa: E402

from eval.core.client import ChatClient  # noqa: E402
from eval.core.runner import ResultsLog, send_rows  # noqa: E402
from eval.tasks.w2 import FIELDS, INT_FIELDS, MONEY_FIELDS, target_json  # noqa: E402
from eval.tasks.w2.task import W2Task  # noqa: E402


def _record(i: int) -> dict:
    rec: dict = {}
    for k in FIELDS:
        if k in MONEY_FIELDS:
            rec[k] = float(1000 + 37 * i + len(k)) + 0.5
        elif k in INT_FIELDS:
            rec[k] = 50000 + i
        else:
            rec[k] = f"{k.split('_')[-1]} {i}"
    return rec


def _form_png(i: int) -> bytes:
    """A 612x792 W-2-like page (the reference dataset's image size): boxes and printed values."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (612, 792), "white")
    draw = ImageDraw.Draw(img)
    rec = _record(i)
    for n, (k, v) in enumerate(rec.items()):
        x, y = 20 + (n % 3) * 195, 20 + (n // 3) * 50
        draw.rectangle([x, y, x + 185, y + 44], outline="black")
        draw.text((x + 4, y + 4), k[:30], fill="black")
        draw.text((x + 4, y + 22), str(v), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _make_split(path: Path, n: int) -> Path:
    from datasets import Dataset, Image, disable_progress_bars

    disable_progress_bars()
    Dataset.from_dict(
        {
            "image": [{"bytes": _form_png(i), "path": None} for i in range(n)],
            "ground_truth": [json.dumps(_record(i)) for i in range(n)],
        }
    ).cast_column("image", Image()).save_to_disk(str(path))
    return path


def _serve(port_file: str, content: str) -> None:
    """The instant server (run in its own process, so it does not share the client's GIL)."""
    body = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 400, "total_tokens": 401},
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the stdlib's 5 drops SYNs at 32 workers: +1 s connect retries

    httpd = Server(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(httpd.server_address[1]))
    httpd.serve_forever()


class _InstantServer:
    """The instant server in a child process."""

    def __init__(self, content: str, tmp: Path) -> None:
        port_file = tmp / "port"
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import eval_client_overhead as b; b._serve({str(port_file)!r}, sys.stdin.read())"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
        self.proc.stdin.write(content)
        self.proc.stdin.close()
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("instant server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_ours(split_dir: Path, url: str, workers: int, n: int, tmp: Path) -> float:
    """Seconds for n requests through eval.core.runner.send_rows (what python -m eval.w2 does)."""
    start = time.perf_counter()
    split = W2Task().load(split_dir)
    client = ChatClient(url, "bench")
    log = ResultsLog(tmp / f"ours_{workers}_{time.monotonic_ns()}.jsonl")
    outcome = send_rows(W2Task(), split, client, list(range(n)), log, max_workers=workers, progress=False)
    client.close()
    assert outcome.sent == n
    return time.perf_counter() - start


def run_seed(split_dir: Path, url: str, workers: int, n: int, tmp: Path) -> float:
    """Seconds for n requests the seed's way (temp PNG per request, SDK parsing, results at the end)."""
    from datasets import load_from_disk
    from openai import OpenAI

    start = time.perf_counter()
    test_set = load_from_disk(str(split_dir))
    client = OpenAI(api_key="x", base_url=url)
    temp_dir = tmp / f"seed_{workers}_{time.monotonic_ns()}"
    temp_dir.mkdir()

    def one(idx: int, sample: dict) -> dict:
        image_path = temp_dir / f"temp_{idx}.png"
        sample["image"].save(image_path)
        with open(image_path, "rb") as f:
            b64 = base64.b64encode(f.read()).decode()
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Extract the W-2 fields as JSON."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
                ],
            }
        ]
        t0 = time.time()
        response = client.chat.completions.create(
            model="bench", messages=messages, temperature=0.0, max_tokens=8192, timeout=300, seed=42
        )
        content = response.choices[0].message.content
        usage = response.usage.model_dump() if response.usage else {}
        m = re.search(r"```(?:json)?\s*([\s\S]*?)\s*```", content) or re.search(r"\{[\s\S]*\}", content)
        pred = json.loads(m.group(1) if m.lastindex else m.group(0))
        gt = json.loads(sample["ground_truth"])
        return {
            "sample_id": idx,
            "prediction": pred,
            "ground_truth": gt,
            "raw_response": content,
            "processing_time": time.time() - t0,
            "usage": usage,
        }

    sample_data = [(idx, sample) for idx, sample in enumerate(test_set)][:n]  # decodes every image
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, idx, s) for idx, s in sample_data]
        for fut in as_completed(futures):
            results.append(fut.result())
    results.sort(key=lambda r: r["sample_id"])
    correct = sum(
        1 for r in results for k in r["ground_truth"] if r["prediction"].get(k) == r["ground_truth"][k]
    )
    assert correct >= len(FIELDS)  # the canned answer is document 0's truth
    with open(tmp / f"seed_results_{workers}_{time.monotonic_ns()}.json", "w") as f:
        json.dump(results, f, indent=2)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=64, help="requests per measurement")
    p.add_argument("--repeats", type=int, default=3, help="measurements per setting (median reported)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 32], help="concurrency levels")
    readme_argument(p, "eval_client_overhead")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        split_dir = _make_split(tmp / "test", args.requests)
        png_kb = statistics.mean(len(_form_png(i)) for i in range(3)) / 1024
        server = _InstantServer(target_json(_record(0)), tmp)
        try:
            # one warm-up of each, so imports and connection set-up are not timed
            run_ours(split_dir, server.url, 1, 2, tmp)
            run_seed(split_dir, server.url, 1, 2, tmp)
            rows = []
            for workers in args.workers:
                ours: list[float] = []
                seed: list[float] = []
                for _ in range(args.repeats):  # interleaved, so both see the same background load
                    ours.append(run_ours(split_dir, server.url, workers, args.requests, tmp))
                    seed.append(run_seed(split_dir, server.url, workers, args.requests, tmp))
                per = 1000 / args.requests
                rows.append(
                    (
                        workers,
                        per * statistics.median(ours),
                        per * statistics.median(seed),
                        per * min(ours),
                        per * min(seed),
                    )
                )
        finally:
            server.stop()

    table = markdown_table(
        [
            "workers",
            "ours (ms/request)",
            "reference approach (ms/request)",
            "reference / ours",
            "best-of ratio",
        ],
        [
            [w, f"{o:.2f}", f"{r:.2f}", f"**{r / o:.1f}×**", f"{r_min / o_min:.1f}×"]
            for w, o, r, o_min, r_min in rows
        ],
    ) + (
        f"\n\nms/request: median over {args.repeats} interleaved repeats of wall time / {args.requests} "
        f"requests; best-of ratio: fastest reference run over fastest ours. 612×792 PNG pages of "
        f"~{png_kb:.0f} KiB; Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}."
    )
    print(table)
    if args.readme:
        publish(
            args.readme,
            "eval_client_overhead",
            table,
            ["benchmarks/eval_client_overhead.py", *(argv or sys.argv[1:])],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
