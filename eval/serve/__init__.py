"""Serving: start an OpenAI-compatible server for a model directory, wait until it serves it, stop it.

``python -m eval.serve`` is the command line (:mod:`eval.serve.__main__`); the Python API is
:func:`start_server` (a started :class:`ServerProcess`, a context manager) and
:func:`build_command`. Backends: :mod:`eval.serve.backends`; the lifecycle:
:mod:`eval.serve.process`. No torch here.
"""

from eval.serve.backends import (
    BACKENDS,
    VLLM_QUANTIZATION_FLAGS,
    Backend,
    build_command,
    checkpoint_quantization,
    default_device,
    server_env,
    start_server,
)
from eval.serve.process import ServerError, ServerProcess, free_port, port_in_use, stop_on_signals

__all__ = [
    "BACKENDS",
    "Backend",
    "ServerError",
    "ServerProcess",
    "VLLM_QUANTIZATION_FLAGS",
    "build_command",
    "checkpoint_quantization",
    "default_device",
    "free_port",
    "port_in_use",
    "server_env",
    "start_server",
    "stop_on_signals",
]
