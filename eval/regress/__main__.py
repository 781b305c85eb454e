"""``python -m eval.regress``: did the fine-tune cost the model its general skills?

Two commands (``--help`` on each lists every flag):

* ``run``: evaluate one served model on lm_eval tasks into a run directory::

      python -m eval.regress run --server_url http://127.0.0.1:8001/v1 --model base \\
          --output_dir regress/base [--tasks arc_challenge_llama,gsm8k_llama] [--limit 50]

* ``compare``: the base model against the fine-tuned one, from two saved runs or two servers
  (or one of each; a server side is run into ``OUTPUT_DIR/base`` or ``OUTPUT_DIR/tuned``)::

      python -m eval.regress compare --base regress/base --tuned regress/tuned --output_dir regress
      python -m eval.regress compare --base-url http://127.0.0.1:8001/v1 --base-model base \\
          --tuned-url http://127.0.0.1:8002/v1 --tuned-model 11B-full --output_dir regress

It prints one line per task and metric (base, fine-tuned, delta, ``z x SE``, verdict) and writes
``report.json`` and ``regression.png``. The verdict rule: :mod:`eval.regress.stats`.

Exit status: 0 done; 1 a task failed, or ``--fail-on-regression`` and a task regressed; 2 bad
arguments or input (``error: ...``); 130 interrupted (rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

__all__ = ["build_parser", "main"]


def _tasks(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise argparse.ArgumentTypeError("names no task")
    return names


def _run_options(parser: argparse.ArgumentParser) -> None:
    from eval.regress.harness import DEFAULT_TASKS

    g = parser.add_argument_group("tasks and requests")
    g.add_argument(
        "--tasks",
        type=_tasks,
        default=None,
        metavar="NAMES",
        help="comma-separated lm_eval task, group or tag names, or task YAML paths "
        f"(default: {','.join(DEFAULT_TASKS)}; compare with a saved run: that run's tasks). "
        "Shipped offline tasks: local_arith_chat, local_knowledge_chat (chat), local_knowledge_mc "
        "(log-likelihood); tags local_chat, local_loglikelihood",
    )
    g.add_argument(
        "--include_path",
        "--include-path",
        dest="include_paths",
        action="append",
        default=None,
        metavar="DIR",
        help="folder of more task YAMLs (repeatable), as lm_eval's --include_path",
    )
    g.add_argument(
        "--limit", type=int, default=None, help="the first N items of each task only (quick checks)"
    )
    g.add_argument(
        "--num_concurrent", "--num-concurrent", type=int, default=8, help="requests in flight per server"
    )
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    g.add_argument("--retries", type=int, default=3, help="extra attempts per request after an error")
    g.add_argument(
        "--stop",
        choices=["auto", "server", "client"],
        default="auto",
        help="chat tasks' stop strings: sent to the server (it stops early) or cut from the replies "
        "here (transformers serve answers 500 to a VLM request with stop); auto: server for vLLM",
    )
    g.add_argument(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="log-likelihood tasks: a local Hugging Face tokenizer directory (needs transformers); "
        "default: the server's /tokenizer_info and /tokenize (vLLM --enable-tokenizer-info-endpoint)",
    )
    o = parser.add_argument_group("output")
    o.add_argument("--resume", action="store_true", help="keep the finished tasks of an interrupted run")
    o.add_argument("--overwrite", action="store_true", help="discard an earlier run in the output directory")
    o.add_argument("--verbose", action="store_true", help="show lm_eval's log")


def build_parser() -> argparse.ArgumentParser:
    """The ``run`` and ``compare`` commands.

    Returns:
        argparse.ArgumentParser: the parser.
    """
    from eval.core.cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="python -m eval.regress",
        description="General-capability regression check through the served model: lm_eval tasks on "
        "the base and the fine-tuned model, per-task delta with its standard error and a verdict.",
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,compare}")
    run = sub.add_parser(
        "run", help="evaluate one served model into a run directory", formatter_class=HelpFormatter
    )
    run.add_argument(
        "--server_url",
        "--server-url",
        required=True,
        metavar="URL",
        help="OpenAI-compatible base URL, ending in /v1",
    )
    run.add_argument("--model", required=True, metavar="NAME", help="served model name")
    run.add_argument(
        "--output_dir", "--output-dir", default="./regress_run", help="the run directory to write"
    )
    run.add_argument(
        "--server_quantization",
        "--server-quantization",
        default=None,
        metavar="Q",
        help="how the server's weights are quantized (e.g. fp8, bitsandbytes; recorded in run.json)",
    )
    _run_options(run)

    cmp = sub.add_parser(
        "compare",
        help="base vs fine-tuned, from saved runs or servers",
        formatter_class=HelpFormatter,
    )
    for side, word in (("base", "base"), ("tuned", "fine-tuned")):
        g = cmp.add_argument_group(f"the {word} model (a saved run, or a server to run now)")
        g.add_argument(
            f"--{side}", default=None, metavar="RUN_DIR", help=f"run directory of the {word} model"
        )
        g.add_argument(
            f"--{side}-url",
            f"--{side}_url",
            dest=f"{side}_url",
            default=None,
            metavar="URL",
            help="server base URL",
        )
        g.add_argument(
            f"--{side}-model",
            f"--{side}_model",
            dest=f"{side}_model",
            default=None,
            metavar="NAME",
            help="served model name",
        )
        g.add_argument(
            f"--{side}-quantization",
            f"--{side}_quantization",
            dest=f"{side}_quantization",
            default=None,
            metavar="Q",
            help="how that server's weights are quantized (recorded)",
        )
    v = cmp.add_argument_group("verdict")
    v.add_argument("--z", type=float, default=1.96, help="standard errors a difference must exceed")
    v.add_argument(
        "--min-effect",
        "--min_effect",
        dest="min_effect",
        type=float,
        default=0.01,
        help="smallest difference that counts, in the metric's units (0.01 = 1 point on a 0-1 metric)",
    )
    v.add_argument(
        "--fail-on-regression",
        "--fail_on_regression",
        dest="fail_on_regression",
        action="store_true",
        help="exit with status 1 when a task regressed",
    )
    cmp.add_argument(
        "--output_dir",
        "--output-dir",
        default="./regress_results",
        help="report.json, regression.png, server runs",
    )
    _run_options(cmp)
    return p


def _options(
    args: argparse.Namespace,
    url: str,
    model: str,
    quantization: Optional[str],
    tasks: Sequence[str],
    limit: Optional[int],
):
    from eval.regress.evaluate import RunOptions

    return RunOptions(
        server_url=url,
        model=model,
        tasks=tuple(tasks),
        include_paths=tuple(args.include_paths or ()),
        limit=limit,
        num_concurrent=args.num_concurrent,
        retries=args.retries,
        timeout=args.timeout,
        stop=args.stop,
        tokenizer=args.tokenizer,
        server_quantization=quantization,
    )


def _run_one(args: argparse.Namespace, opts, out: Path) -> bool:
    """Run one model; print its table; True when every task finished."""
    from eval.regress.evaluate import results_table, run_model
    from eval.regress.runs import load_run

    outcome = run_model(opts, out, resume=args.resume, overwrite=args.overwrite, verbose=args.verbose)
    run = load_run(out)
    print(f"\n{opts.model} at {opts.server_url}: {out}")
    print(results_table(run.results, run.status))
    if outcome.interrupted:
        raise KeyboardInterrupt
    return not outcome.failed


def _cmd_run(args: argparse.Namespace) -> int:
    from eval.regress.harness import DEFAULT_TASKS

    opts = _options(
        args, args.server_url, args.model, args.server_quantization, args.tasks or DEFAULT_TASKS, args.limit
    )
    return 0 if _run_one(args, opts, Path(args.output_dir)) else 1


def _cmd_compare(args: argparse.Namespace) -> int:
    from eval.regress.compare import compare_runs, format_report, write_report
    from eval.regress.harness import DEFAULT_TASKS
    from eval.regress.runs import load_run
    from eval.regress.stats import REGRESSED, Rule

    rule = Rule(z=args.z, min_effect=args.min_effect)
    out = Path(args.output_dir)
    sides = {}
    for side in ("base", "tuned"):
        run_dir, url, model = (
            getattr(args, side),
            getattr(args, f"{side}_url"),
            getattr(args, f"{side}_model"),
        )
        if bool(run_dir) == bool(url):
            raise ValueError(f"give either --{side} RUN_DIR or --{side}-url URL (with --{side}-model)")
        if url and not model:
            raise ValueError(f"--{side}-url needs --{side}-model (the served model name)")
        if run_dir and (model or getattr(args, f"{side}_quantization")):
            raise ValueError(
                f"--{side}-model and --{side}-quantization go with --{side}-url, not a saved run"
            )
        sides[side] = load_run(run_dir) if run_dir else None
    saved = next((r for r in sides.values() if r is not None), None)
    tasks = args.tasks or (tuple(saved.identity.get("tasks") or saved.tasks) if saved else DEFAULT_TASKS)
    limit = args.limit if args.limit is not None or saved is None else saved.identity.get("limit")
    complete = True
    for side in ("base", "tuned"):
        if sides[side] is None:
            opts = _options(
                args, getattr(args, f"{side}_url"), getattr(args, f"{side}_model"),
                getattr(args, f"{side}_quantization"), tasks, limit,
            )  # fmt: skip
            complete = _run_one(args, opts, out / side) and complete
            sides[side] = load_run(out / side)
    report = compare_runs(sides["base"], sides["tuned"], rule, tasks=args.tasks)
    write_report(report, out)
    print()
    print(format_report(report))
    print(f"report: {out / 'report.json'}; plot: {out / 'regression.png'}")
    if not complete:
        return 1
    return 1 if args.fail_on_regression and report["verdict"] == REGRESSED else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line (see the module docstring).

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: the exit status.
    """
    from eval.regress.compare import CompareError
    from eval.regress.harness import HarnessError
    from eval.regress.runs import RunError

    args = build_parser().parse_args(argv)
    if args.resume and args.overwrite:
        print("error: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    try:
        return _cmd_run(args) if args.command == "run" else _cmd_compare(args)
    except (ValueError, HarnessError, RunError, CompareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; finished tasks are kept (rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
