"""Files and directories that are either fully written or not there: temp + fsync + rename.

A process killed while it writes (SIGKILL, OOM, preemption) leaves at most a temporary
``.<name>.tmp*`` next to the target, never a truncated target: the previous version stays
readable until the complete new one replaces it in one ``rename``. Directories are built under
a temporary name and swapped in; if a kill lands between the two renames of a swap, the
previous version is left as ``.<name>.old`` and :func:`recover_dir` puts it back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_save",
    "atomic_torch_save",
    "atomic_write_text",
    "publish_dir",
    "recover_dir",
    "staging_dir",
]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(path: Path, write: Any) -> None:
    """Write ``path`` through ``write(tmp_path)`` and rename the complete file into place.

    Args:
        path (Path): the target file.
        write (Callable[[Path], None]): writes the whole content to the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8) atomically.

    Args:
        path (Path): the target file.
        text (str): its whole content.
    """
    atomic_save(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically.

    Args:
        obj (Any): what to save.
        path (Path): the target file.
    """
    import torch

    atomic_save(path, lambda tmp: torch.save(obj, tmp))


def staging_dir(dest: Path) -> Path:
    """A fresh, empty temporary directory beside ``dest`` to build its next version in.

    Args:
        dest (Path): the directory that will be published.

    Returns:
        Path: ``.<name>.tmp`` next to it (any leftover of a killed run removed).
    """
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def recover_dir(dest: Path) -> None:
    """Finish or undo a :func:`publish_dir` that a kill interrupted.

    Args:
        dest (Path): the published directory.
    """
    dest = Path(dest)
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        if dest.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, dest)


def publish_dir(src: Path, dest: Path) -> None:
    """Replace directory ``dest`` by the complete directory ``src`` (same filesystem).

    Args:
        src (Path): the new version, fully written (e.g. from :func:`staging_dir`).
        dest (Path): the directory to replace (created if absent).
    """
    src, dest = Path(src), Path(dest)
    recover_dir(dest)
    for f in src.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = dest.with_name(f".{dest.name}.old")
    if dest.exists():
        os.replace(dest, old)
    os.replace(src, dest)
    _fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)
