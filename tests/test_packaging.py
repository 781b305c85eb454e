"""pyproject.toml installs every package folder, and recipes/ as torchtune_ext.recipes."""

from __future__ import annotations

import tomllib

from setuptools import find_namespace_packages
from testing_utils import REPO


def test_package_list_matches_the_folders() -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    # eval/regress/tasks holds lm-eval task files, shipped as eval.regress package-data.
    found = find_namespace_packages(where=str(REPO), include=["torchtune_ext*", "eval*"])
    on_disk = {p for p in found if not p.startswith("eval.regress.tasks")}
    listed = set(tool["packages"])
    assert tool["package-dir"] == {"torchtune_ext.recipes": "recipes"}
    assert listed - {"torchtune_ext.recipes"} == on_disk, (
        f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}; remove: {sorted(listed - on_disk - {'torchtune_ext.recipes'})}"
    )


def test_recipes_import_under_the_package_not_as_top_level_recipes() -> None:
    import importlib.util

    spec = importlib.util.find_spec("torchtune_ext.recipes.full_finetune_vision")
    assert spec is not None and spec.origin == str(REPO / "recipes" / "full_finetune_vision.py")
