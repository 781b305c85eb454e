"""The lm-evaluation-harness side: task loading, the API model classes, one task's evaluation.

lm_eval (``pip install 'torchtune-ext[lm_eval]'``) is imported inside the functions, so this
module imports in any environment; lm_eval itself needs no torch for API models.

Which endpoint a task uses follows from its output type:

* ``generate_until`` → the chat endpoint (``/v1/chat/completions``) with the task's prompt as a
  chat (lm_eval's ``--apply_chat_template`` and ``--fewshot_as_multiturn``), through
  :func:`chat_model_class`, lm_eval's ``local-chat-completions`` with two server-dependent
  choices (:func:`probe_server` tells vLLM, which has ``/version``, from the rest):

  - stop strings: vLLM gets them as ``stop`` and stops early. Other servers get none and the
    reply is cut at every stop string here (lm_eval would send only the first four):
    ``transformers serve`` 5.x answers HTTP 500 to any request with ``stop`` when it serves a
    vision-language model (its stop-string criteria asks the processor for a vocabulary it does
    not have). The text scored is the same; the server may write up to ``max_gen_toks`` tokens.
  - a prefilled reply (a task's ``gen_prefix``, e.g. Meta's "The best answer is" in
    ``arc_challenge_llama``): lm_eval sends it as a last, assistant message. vLLM is asked to
    continue it (``continue_final_message``); other servers close that message and start a new
    reply, which such tasks do not score as intended (the run says so).
* ``loglikelihood``, ``multiple_choice``, ``loglikelihood_rolling`` → lm_eval's
  ``local-completions`` on ``/v1/completions``, which asks for the prompt's log-probabilities
  (``echo`` + ``logprobs``). vLLM answers those; ``transformers serve`` refuses them and chat
  endpoints have none. It needs the server's tokenizer: vLLM's ``/tokenizer_info`` and
  ``/tokenize`` (start vLLM with ``--enable-tokenizer-info-endpoint``), or a local Hugging Face
  tokenizer directory (``tokenizer``; needs transformers).
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "CHAT_MODEL",
    "DEFAULT_TASKS",
    "LOGLIKELIHOOD_TYPES",
    "SHIPPED_TASKS",
    "STOP_MODES",
    "HarnessError",
    "chat_model_class",
    "evaluate_task",
    "has_prefill",
    "is_loglikelihood",
    "lm_eval_version",
    "load_tasks",
    "make_model",
    "probe_server",
    "quiet_lm_eval",
]

#: The folder of the offline tasks shipped with the package (always on the include path).
SHIPPED_TASKS = Path(__file__).resolve().parent / "tasks"
#: Tasks run when none are named: Meta's chat-format ARC-Challenge (0-shot, a prefilled reply:
#: run it on vLLM) and GSM8K (8-shot chain of thought), both generate-until through the chat
#: endpoint. They download their data from the Hugging Face Hub.
DEFAULT_TASKS = ("arc_challenge_llama", "gsm8k_llama")
#: Where the stop strings are applied: ``server`` (sent as ``stop``) or ``client`` (cut here).
STOP_MODES = ("server", "client")
#: lm_eval model name of :func:`chat_model_class`.
CHAT_MODEL = "local-chat-completions-client-stop"
#: Output types that need prompt log-probabilities (a completions endpoint).
LOGLIKELIHOOD_TYPES = ("loglikelihood", "multiple_choice", "loglikelihood_rolling")
#: Bootstrap draws for lm_eval's standard errors of non-mean metrics (the comparison computes
#: its own from the per-item scores).
BOOTSTRAP_ITERS = 1000

_INSTALL_HINT = "pip install 'torchtune-ext[lm_eval]' (or 'lm_eval[api]==0.4.13')"


class HarnessError(Exception):
    """lm_eval is missing, a task cannot be found or loaded, or the server lacks what a task needs."""


def _import_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as exc:
        raise HarnessError(
            f"python -m eval.regress run needs lm-evaluation-harness: {_INSTALL_HINT}"
        ) from exc
    return lm_eval


def lm_eval_version() -> Optional[str]:
    """The installed lm_eval version.

    Returns:
        Optional[str]: e.g. ``"0.4.13"``; None when it is not installed.
    """
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return None


def quiet_lm_eval(verbose: bool = False) -> None:
    """Show lm_eval's log records from ERROR up (INFO up with ``verbose``).

    Its warnings are about choices made here on purpose (no tokenizer for chat requests, the
    shipped tasks' own dataset loader).

    Args:
        verbose (bool): show INFO and up.
    """
    logging.getLogger("lm_eval").setLevel(logging.INFO if verbose else logging.ERROR)


@functools.cache
def chat_model_class() -> type:
    """lm_eval's ``local-chat-completions`` with the stop strings and prefills handled per server.

    Registered with lm_eval as :data:`CHAT_MODEL` on first call. Extra constructor arguments:
    ``send_stop`` (default False: the request carries no ``stop`` and the reply is cut here;
    True: ``stop`` is sent, as the stock class does) and ``continue_prefill`` (default False;
    True: a request whose last message is the assistant's asks the server to continue that
    message, vLLM's ``continue_final_message``).

    Returns:
        type: the model class (a ``lm_eval.api.model.LM``).

    Raises:
        HarnessError: if lm_eval is not installed.
    """
    _import_lm_eval()
    from lm_eval.api.registry import register_model
    from lm_eval.models.openai_completions import LocalChatCompletion
    from lm_eval.models.utils import handle_stop_sequences, postprocess_generated_text

    class ClientStopChatCompletion(LocalChatCompletion):
        """Chat completions that cut replies at the stop strings here and can continue a prefill."""

        def __init__(
            self, *args: Any, send_stop: bool = False, continue_prefill: bool = False, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.send_stop = send_stop
            self.continue_prefill = continue_prefill

        def _create_payload(
            self,
            messages: list[dict],
            generate: bool = False,
            gen_kwargs: Optional[dict] = None,
            seed: int = 1234,
            eos: Optional[str] = None,
            **kwargs: Any,
        ) -> dict:
            payload = super()._create_payload(
                messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos, **kwargs
            )
            if not self.send_stop:
                payload.pop("stop", None)
            if self.continue_prefill and messages and messages[-1].get("role") == "assistant":
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
            return payload

        def stop_sequences(self, gen_kwargs: Mapping[str, Any]) -> list[str]:
            """The task's ``until`` strings plus the EOS string, as the stock class would send them."""
            until = gen_kwargs.get("until")
            until = list(until) if isinstance(until, (list, tuple)) else until
            return handle_stop_sequences(until, self.eos_string)

        def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
            replies = super().generate_until(requests, disable_tqdm=disable_tqdm)
            if self.send_stop:
                return replies
            return [
                postprocess_generated_text(reply, self.stop_sequences(req.args[1]), None)
                for reply, req in zip(replies, requests, strict=True)
            ]

    register_model(CHAT_MODEL)(ClientStopChatCompletion)
    return ClientStopChatCompletion


def probe_server(server_url: str, timeout: float = 10.0) -> dict[str, Optional[str]]:
    """Which server answers at ``server_url``: vLLM answers ``GET /version`` with its version.

    Args:
        server_url (str): the OpenAI-compatible base URL, ending in ``/v1``.
        timeout (float): seconds.

    Returns:
        dict[str, Optional[str]]: ``{"kind": "vllm", "version": "0.10.0"}``, or
        ``{"kind": "other", "version": None}``.
    """
    root = server_url.rstrip("/").removesuffix("/v1")
    try:
        with urllib.request.urlopen(f"{root}/version", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("version"), str):
        return {"kind": "vllm", "version": body["version"]}
    return {"kind": "other", "version": None}


def has_prefill(task: Any) -> bool:
    """Whether an lm_eval task prefills the assistant's reply (``gen_prefix``).

    Args:
        task (Any): an ``lm_eval.api.task.Task``.

    Returns:
        bool: True when the task or its few-shot config sets ``gen_prefix``.
    """
    fewshot = task.get_config("fewshot_config") or {}
    return bool(task.get_config("gen_prefix")) or bool(
        isinstance(fewshot, dict) and fewshot.get("gen_prefix")
    )


def is_loglikelihood(task: Any) -> bool:
    """Whether an lm_eval task needs prompt log-probabilities.

    Args:
        task (Any): an ``lm_eval.api.task.Task``.

    Returns:
        bool: True for the :data:`LOGLIKELIHOOD_TYPES`.
    """
    return task.get_config("output_type") in LOGLIKELIHOOD_TYPES


def make_model(
    kind: str,
    server_url: str,
    model: str,
    *,
    num_concurrent: int = 8,
    retries: int = 3,
    timeout: float = 300.0,
    send_stop: bool = False,
    continue_prefill: bool = False,
    tokenizer: Optional[str] = None,
) -> Any:
    """An lm_eval API model for one server.

    Args:
        kind (str): ``"chat"`` (generate-until tasks) or ``"completions"`` (log-likelihood tasks).
        server_url (str): the OpenAI-compatible base URL, ending in ``/v1``.
        model (str): the served model name.
        num_concurrent (int): requests in flight.
        retries (int): extra attempts per request after an error.
        timeout (float): seconds per request.
        send_stop (bool): chat: send ``stop`` to the server instead of applying it here.
        continue_prefill (bool): chat: ask the server to continue a prefilled assistant reply.
        tokenizer (Optional[str]): completions: a local Hugging Face tokenizer directory, used
            instead of the server's tokenizer endpoints.

    Returns:
        Any: an ``lm_eval.api.model.LM``.

    Raises:
        HarnessError: if lm_eval is missing, or (completions) the server has no tokenizer
            endpoints and no ``tokenizer`` is given.
        ValueError: for an unknown ``kind``.
    """
    _import_lm_eval()
    base = server_url.rstrip("/")
    common: dict[str, Any] = {
        "model": model,
        "num_concurrent": num_concurrent,
        "max_retries": retries + 1,
        "timeout": int(timeout),
    }
    if kind == "chat":
        return chat_model_class()(
            base_url=f"{base}/chat/completions",
            tokenizer_backend=None,
            send_stop=send_stop,
            continue_prefill=continue_prefill,
            **common,
        )
    if kind != "completions":
        raise ValueError(f"unknown model kind {kind!r}; expected 'chat' or 'completions'")
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    from lm_eval.utils import check_remote_tokenizer_support

    url = f"{base}/completions"
    if tokenizer:
        return LocalCompletionsAPI(
            base_url=url, tokenizer_backend="huggingface", tokenizer=tokenizer, **common
        )
    if not check_remote_tokenizer_support(url, timeout=int(min(timeout, 30))):
        raise HarnessError(
            f"log-likelihood tasks need the server's tokenizer, and {base} has no /tokenizer_info: "
            "start vLLM with --enable-tokenizer-info-endpoint (python -m eval.serve ... -- "
            "--enable-tokenizer-info-endpoint), or pass --tokenizer DIR (a local Hugging Face tokenizer)"
        )
    return LocalCompletionsAPI(base_url=url, tokenizer_backend="remote", **common)


def task_manager(include_paths: Sequence[str | Path] = (), include_defaults: bool = True) -> Any:
    """An lm_eval ``TaskManager`` over lm_eval's tasks, the shipped tasks and ``include_paths``.

    Args:
        include_paths (Sequence[str | Path]): more folders of task YAMLs (``--include_path``).
        include_defaults (bool): index lm_eval's own tasks too (about 15,000; ~10 s).

    Returns:
        Any: the task manager.
    """
    _import_lm_eval()
    from lm_eval.tasks import TaskManager

    paths = [str(SHIPPED_TASKS), *(str(p) for p in include_paths)]
    return TaskManager(include_path=paths, include_defaults=include_defaults)


def load_tasks(
    specs: Sequence[str], include_paths: Sequence[str | Path] = ()
) -> tuple[Any, dict[str, dict], list[str]]:
    """Resolve task, group and tag names (or YAML paths) to lm_eval tasks, loading their data.

    lm_eval's own task index is built only when a name is not among the shipped tasks and
    ``include_paths``.

    Args:
        specs (Sequence[str]): names or YAML paths.
        include_paths (Sequence[str | Path]): more folders of task YAMLs.

    Returns:
        tuple[Any, dict[str, dict], list[str]]: the task manager; spec → {leaf task name: Task};
        and the specs that are lm_eval groups (scored as one pooled set; a tag is just a list
        of tasks).

    Raises:
        HarnessError: for an unknown name (with close matches) or a task whose data cannot be
            loaded (e.g. it needs the Hugging Face Hub and the hub is unreachable).
    """
    for path in include_paths:
        if not Path(path).is_dir():
            raise HarnessError(f"--include_path {path}: not a directory")
    manager = task_manager(include_paths, include_defaults=False)
    if not all(spec in manager.all_tasks or Path(spec).is_file() for spec in specs):
        manager = task_manager(include_paths, include_defaults=True)
    out: dict[str, dict] = {}
    groups: list[str] = []
    for spec in specs:
        if spec not in manager.all_tasks and not Path(spec).is_file():
            close = difflib.get_close_matches(spec, manager.all_tasks, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise HarnessError(f"unknown task {spec!r}{hint}")
        try:
            loaded = manager.load([spec])
        except Exception as exc:  # datasets/hub errors come in many types
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise HarnessError(
                f"task {spec}: cannot load it ({type(exc).__name__}: {first}); "
                "lm_eval's tasks download their data from the Hugging Face Hub"
            ) from exc
        if not loaded["tasks"]:
            raise HarnessError(f"task {spec}: it names no tasks")
        out[spec] = dict(loaded["tasks"])
        if spec in loaded["groups"]:
            groups.append(spec)
    return manager, out, groups


def _metric_entries(task: Any, results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    aggregations = task.aggregation()
    directions = task.higher_is_better()
    out: dict[str, dict[str, Any]] = {}
    for key, value in results.items():
        if "," not in key or "_stderr," in key:
            continue
        name, filter_name = key.split(",", 1)
        agg = aggregations.get(name)
        out[key] = {
            "metric": name,
            "filter": filter_name,
            "value": value,
            "stderr": results.get(f"{name}_stderr,{filter_name}"),
            "aggregation": getattr(agg, "__name__", None if agg is None else str(agg)),
            "higher_is_better": bool(directions.get(name, True)),
        }
    return out


def _sample_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    response = sample.get("filtered_resps")
    if isinstance(response, list) and len(response) == 1:
        response = response[0]
    raw = sample.get("resps")
    reply = raw[0][0] if raw and isinstance(raw[0], list) and raw[0] and isinstance(raw[0][0], str) else None
    return {
        "doc_id": sample["doc_id"],
        "filter": sample["filter"],
        "doc_hash": sample.get("doc_hash"),
        "prompt_hash": sample.get("prompt_hash"),
        "target_hash": sample.get("target_hash"),
        "target": sample.get("target"),
        "reply": reply,
        "response": response,
        "metrics": {m: sample.get(m) for m in sample.get("metrics", [])},
    }


def evaluate_task(
    lm: Any, name: str, task: Any, manager: Any, *, chat: bool, limit: Optional[int] = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate one leaf task with lm_eval and return its results and per-item records.

    Args:
        lm (Any): the model from :func:`make_model`.
        name (str): the leaf task name.
        task (Any): the loaded task.
        manager (Any): the task manager that loaded it.
        chat (bool): format prompts as chats (lm_eval's ``apply_chat_template`` and
            ``fewshot_as_multiturn``).
        limit (Optional[int]): the first N items only.

    Returns:
        tuple[dict[str, Any], list[dict[str, Any]]]: the task's ``results.json`` entry and its
        samples (see :mod:`eval.regress.runs`).
    """
    from lm_eval import simple_evaluate

    t0 = time.monotonic()
    res = simple_evaluate(
        model=lm,
        tasks=[task],
        task_manager=manager,
        limit=limit,
        log_samples=True,
        apply_chat_template=chat,
        fewshot_as_multiturn=chat,
        bootstrap_iters=BOOTSTRAP_ITERS,
        torch_random_seed=None,
    )
    wall = time.monotonic() - t0
    n = res.get("n-samples", {}).get(name, {})
    entry = {
        "output_type": task.get_config("output_type"),
        "endpoint": "chat" if chat else "completions",
        "version": (task.get_config("metadata") or {}).get("version"),
        "num_fewshot": task.get_config("num_fewshot"),
        "n": n.get("effective"),
        "n_total": n.get("original"),
        "wall_s": round(wall, 3),
        "metrics": _metric_entries(task, res["results"][name]),
    }
    samples = [_sample_record(s) for s in res["samples"][name]]
    return entry, samples
