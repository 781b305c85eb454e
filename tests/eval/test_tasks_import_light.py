"""The classification, detection and DocVQA evaluators import without torch (light client env)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_task_evaluators_import_without_torch() -> None:
    code = (
        "import sys\n"
        "for _m in ('torch', 'torchvision', 'torchtune', 'transformers', 'torchtune_ext'):\n"
        "    sys.modules[_m] = None\n"
        "import eval.classify, eval.detect, eval.docvqa, eval.record_tasks, eval.tasks.records\n"
        "import eval.tasks.classify, eval.tasks.detect, eval.tasks.docvqa, eval.tasks.parsing\n"
        "import eval.metrics.classify, eval.metrics.detect, eval.metrics.docvqa\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


MODULES = [
    "eval.tasks.classify",
    "eval.tasks.detect",
    "eval.tasks.docvqa",
    "eval.tasks.records",
    "eval.tasks.parsing",
    "eval.metrics.classify",
    "eval.metrics.detect",
    "eval.metrics.docvqa",
    "eval.record_tasks",
    "eval.classify",
    "eval.detect",
    "eval.docvqa",
    "eval.metrics",
]


def test_each_module_imports_first_without_cycles() -> None:
    """Every module imports as the first one, in a fresh module state (no import cycles)."""
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}:\n"
        "    for name in [k for k in sys.modules if k == 'eval' or k.startswith('eval.')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
