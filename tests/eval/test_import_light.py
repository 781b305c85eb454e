"""The evaluator runs in a light client environment: no torch, no transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

from eval.tasks.w2 import target_json

REPO = Path(__file__).resolve().parents[2]

# `sys.modules[name] = None` makes `import name` raise ImportError, as if it were not installed.
BLOCK = (
    "import sys\n"
    "for _m in ('torch', 'torchvision', 'torchtune', 'transformers'):\n"
    "    sys.modules[_m] = None\n"
)


def test_modules_import_without_torch() -> None:
    code = BLOCK + (
        "import eval\n"
        "assert eval.TaskAdapter.__module__ == 'eval.runner'\n"
        "assert eval.start_server.__module__ == 'eval.serve'\n"
        "assert 'openai' not in sys.modules and 'datasets' not in sys.modules  # loaded when a run starts\n"
        "import eval.w2, eval.serve, eval.runner, eval.cli, eval.client, eval.data, eval.report, "
        "eval.metrics, eval.parsing, eval.tasks.w2\n"
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
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "report.json").read_text())["metrics"]["accuracy_strict"] == 1.0
