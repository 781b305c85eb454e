"""The evaluator runs in a light client environment: no torch, no transformers."""

import json
from pathlib import Path

from testing_utils import run_cmd

from eval.tasks.w2 import target_json

# `sys.modules[name] = None` makes `import name` raise ImportError, as if it were not installed.
BLOCK = (
    "import sys\n"
    "for _m in ('torch', 'torchvision', 'torchtune', 'transformers', 'torchtune_ext'):\n"
    "    sys.modules[_m] = None\n"
)


def _run_light(code: str) -> str:
    """Run ``code`` in a fresh interpreter with the repository on the path; return its stdout."""
    return run_cmd(["python", "-c", code], timeout=120).stdout


def test_modules_import_without_torch() -> None:
    code = BLOCK + (
        "import eval\n"
        "assert eval.Task.__module__ == 'eval.core.task'\n"
        "assert eval.start_server.__module__ == 'eval.serve.backends'\n"
        "import eval.w2, eval.serve, eval.core.runner, eval.core.cli, eval.tasks.w2.task\n"
        "assert 'openai' not in sys.modules and 'datasets' not in sys.modules  # loaded when a run starts\n"
        "print('ok')\n"
    )
    assert _run_light(code).strip() == "ok"


def test_a_whole_run_works_without_torch(tmp_path: Path, kit, fault_server) -> None:
    gts = [kit.w2_record(i) for i in range(2)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(2)}, {i: [kit.ok(target_json(gts[i]))] for i in range(2)}
    )
    out = tmp_path / "out"
    args = [
        "--server_url",
        srv.url,
        "--model",
        "m",
        "--dataset",
        str(split),
        "--output_dir",
        str(out),
        "--no_progress",
    ]
    code = BLOCK + (
        "from eval.w2 import main\n"
        f"rc = main({args!r})\n"
        "leaked = [m for m in ('torch', 'transformers') if sys.modules.get(m) is not None]\n"
        "assert not leaked, leaked\n"
        "sys.exit(rc)\n"
    )
    _run_light(code)
    assert json.loads((out / "report.json").read_text())["metrics"]["accuracy_strict"] == 1.0


def _all_eval_modules() -> list[str]:
    import pkgutil

    import eval

    return sorted(
        m.name for m in pkgutil.walk_packages(eval.__path__, "eval.") if not m.name.endswith("__main__")
    )


EVAL_MODULES = _all_eval_modules()


def test_every_eval_module_imports_without_torch() -> None:
    assert {"eval.core.cli", "eval.tasks.classify.task", "eval.serve.backends"} <= set(EVAL_MODULES)
    code = BLOCK + "".join(f"import {m}\n" for m in EVAL_MODULES) + "print('ok')\n"
    assert _run_light(code).strip() == "ok"


def test_each_module_imports_first_without_cycles() -> None:
    """Every module imports as the first one, in a fresh module state (no import cycles)."""
    code = (
        "import importlib, sys\n"
        f"for m in {EVAL_MODULES!r}:\n"
        "    for name in [k for k in sys.modules if k == 'eval' or k.startswith('eval.')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    assert _run_light(code).strip() == "ok"
