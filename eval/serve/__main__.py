"""``python -m eval.serve``: serve a model directory, then evaluate it or wait for you to.

``python -m eval.serve --model DIR [--backend transformers|vllm|vllm-cpu] [--task w2] [--port P]``
starts the server (:mod:`eval.serve.backends`), waits (bounded) until it serves the model, and
then either

* with ``--eval-output OUT --dataset SPLIT``: runs ``python -m eval.<task>`` against it into
  ``OUT`` and stops the server (exit status: the evaluator's), or
* stays in the foreground, printing the evaluator command to run from another shell, until
  Ctrl-C, ``kill PID`` (SIGTERM), a closed terminal (SIGHUP) or Ctrl-\\ (SIGQUIT); each stops
  the server's whole process group. On Linux, even ``kill -9`` of this command stops the
  server: the kernel sends it SIGTERM when its parent dies.

Arguments after ``--`` go to the server unchanged. ``--dry-run`` prints both commands. Secrets
in what is printed (``--api-key VALUE`` among the server arguments, credentials in a URL) are
masked (:mod:`eval.core.redact`), also in the server's log lines shown with an error.
``--quantization fp8|bitsandbytes`` (``--backend vllm``) quantizes the weights while loading; the
evaluator then records it (``--server_quantization``), as it does the ``quant_method`` of a
pre-quantized checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from eval.core.redact import redact_argv
from eval.serve.backends import (
    BACKENDS,
    VLLM_MAX_NUM_SEQS,
    VLLM_QUANTIZATION_FLAGS,
    build_command,
    checkpoint_quantization,
    start_server,
)
from eval.serve.process import ServerError, ServerProcess, free_port, stop_on_signals

__all__ = ["eval_command", "main"]


def eval_command(
    base_url: str,
    model_name: str,
    dataset: Optional[str],
    structured: bool,
    output_dir: Optional[str] = None,
    task: str = "w2",
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``python -m eval.<task>`` command for a running server.

    Args:
        base_url (str): server base URL.
        model_name (str): served model name.
        dataset (Optional[str]): split to evaluate (a placeholder if None).
        structured (bool): add ``--structured``.
        output_dir (Optional[str]): ``--output_dir`` value, if any.
        task (str): the task.
        extra (Sequence[str]): more evaluator flags.

    Returns:
        list[str]: the argv, ``python -m eval.<task>`` first.
    """
    cmd = ["python", "-m", f"eval.{task}", "--server_url", base_url, "--model", model_name]
    if structured:
        cmd.append("--structured")
    cmd += ["--dataset", dataset or "DIR/test"]
    if output_dir:
        cmd += ["--output_dir", output_dir]
    return cmd + list(extra)


def _parser() -> argparse.ArgumentParser:
    from eval.core.cli import HelpFormatter
    from eval.tasks import task_names

    p = argparse.ArgumentParser(
        prog="python -m eval.serve",
        description="Serve a model directory with an OpenAI-compatible server and evaluate it. "
        "Arguments after `--` go to the server unchanged.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--model", required=True, help="Hugging Face model directory (config.json, weights, tokenizer)"
    )
    p.add_argument("--backend", choices=list(BACKENDS), default="transformers", help="server")
    p.add_argument("--task", choices=task_names(), default="w2", help="the evaluator to run or print")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=int, default=8001, help="listen port (0: any free port)")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the server's environment (vllm and vllm-cpu: their own venv)",
    )
    p.add_argument(
        "--served-model-name",
        "--served_model_name",
        dest="served_model_name",
        default=None,
        help="vLLM: the model name clients send (default: the directory's name)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="transformers: --device (default: cpu when no NVIDIA GPU is visible, else auto)",
    )
    p.add_argument(
        "--max-model-len",
        "--max_model_len",
        dest="max_model_len",
        type=int,
        default=None,
        help="vLLM: context length (default 9000 for vllm, 16384 for vllm-cpu)",
    )
    p.add_argument(
        "--max-num-seqs",
        "--max_num_seqs",
        dest="max_num_seqs",
        type=int,
        default=VLLM_MAX_NUM_SEQS,
        help="vllm: concurrent sequences (raise on big GPUs; the reference used 100 on an H100)",
    )
    p.add_argument("--dtype", default=None, help="vLLM: --dtype (vllm-cpu default: auto)")
    p.add_argument(
        "--quantization",
        choices=list(VLLM_QUANTIZATION_FLAGS),
        default=None,
        help="vllm: quantize the weights while loading: fp8 (compute capability >= 8.0) or "
        "bitsandbytes (4-bit NF4); recorded by the evaluator",
    )
    p.add_argument(
        "--startup-timeout",
        "--startup_timeout",
        dest="startup_timeout",
        type=float,
        default=900.0,
        help="seconds to wait until the server serves the model",
    )
    p.add_argument(
        "--log-file",
        "--log_file",
        dest="log_file",
        default=None,
        help="server log (default: a temp file; printed)",
    )
    p.add_argument("--dataset", default=None, help="split to evaluate (or to put into the printed command)")
    p.add_argument(
        "--eval-output",
        "--eval_output",
        dest="eval_output",
        default=None,
        help="run the task's evaluator on --dataset into this directory, then stop the server "
        "(exit status: the evaluator's)",
    )
    p.add_argument(
        "--eval-args",
        "--eval_args",
        dest="eval_args",
        default="",
        help="more evaluator flags, as one string (e.g. '--limit 10 --labels data/cars/labels.txt')",
    )
    p.add_argument(
        "--dry-run", "--dry_run", dest="dry_run", action="store_true", help="print the commands and exit"
    )
    return p


def _quantization_args(args: argparse.Namespace) -> list[str]:
    """``--server_quantization Q`` for the evaluator when the served weights are quantized."""
    quantization = args.quantization or checkpoint_quantization(args.model)
    return ["--server_quantization", quantization] if quantization else []


def _evaluate(server: ServerProcess, args: argparse.Namespace, structured: bool) -> int:
    """Run the task's evaluator in this process against the ready server."""
    from eval.core.cli import main as run_task

    argv = eval_command(
        server.base_url, server.model_name, args.dataset, structured, args.eval_output, args.task,
        _quantization_args(args) + shlex.split(args.eval_args),
    )  # fmt: skip
    print(f"ready: {server.base_url}; running: {shlex.join(redact_argv(argv))}", flush=True)
    try:
        return run_task(args.task, argv[3:])
    finally:
        print("stopping the server ...", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the serve command (see the module docstring).

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 after Ctrl-C/SIGTERM/SIGHUP/SIGQUIT, 1 if the server died, 2 if it could not start;
        with ``--eval-output``, the evaluator's exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    port = args.port or free_port(args.host)
    structured = BACKENDS[args.backend].structured
    if args.quantization and args.backend != "vllm":
        print(f"error: --quantization is for --backend vllm, not {args.backend}", file=sys.stderr)
        return 2
    command_args = dict(
        served_model_name=args.served_model_name,
        device=args.device,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        dtype=args.dtype,
        quantization=args.quantization,
        extra_args=extra,
    )
    if args.dry_run:
        cmd, name = build_command(
            args.model, args.backend, host=args.host, port=port, python=args.python, **command_args
        )
        print(shlex.join(redact_argv(cmd)))
        url = f"http://{args.host}:{port}/v1"
        evaluator = eval_command(
            url, name, args.dataset, structured, args.eval_output, args.task, _quantization_args(args)
        )
        print(shlex.join(redact_argv(evaluator)))
        return 0
    if args.eval_output and not args.dataset:
        print("error: --eval-output needs --dataset (the split to evaluate)", file=sys.stderr)
        return 2
    print(f"starting {args.backend} server for {args.model} on {args.host}:{port} ...", flush=True)
    with stop_on_signals():
        try:
            server = start_server(
                args.model,
                args.backend,
                host=args.host,
                port=port,
                python=args.python,
                startup_timeout=args.startup_timeout,
                log_path=Path(args.log_file) if args.log_file else None,
                **command_args,
            )
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ninterrupted while starting; the server was stopped", file=sys.stderr)
            return 130
        with server:
            if args.eval_output:
                return _evaluate(server, args, structured)
            try:
                print(f"ready: {server.base_url} (model {server.model_name!r}); log: {server.log_path}")
                if not structured:
                    print(f"note: {args.backend} ignores response_format, so the command has no --structured")
                command = eval_command(
                    server.base_url, server.model_name, args.dataset, structured, task=args.task,
                    extra=_quantization_args(args),
                )  # fmt: skip
                print(f"evaluate with:\n  {shlex.join(redact_argv(command))}")
                print(f"stop with Ctrl-C, or: kill {os.getpid()}", flush=True)
                code = server.process.wait() if server.process else 0
            except KeyboardInterrupt:
                print("\nstopping the server ...", flush=True)
                return 0
    print(f"error: the server exited with status {code}{server.log_tail()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
