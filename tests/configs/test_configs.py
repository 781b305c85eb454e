"""Every shipped YAML instantiates, reads only keys its recipe uses, and opens with its commands.

11B models are built on the meta device (no memory); file inputs (tokenizer, data) point at
the tiny checkpoint and a small generated dataset, since no weights can be downloaded here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchtune
from omegaconf import DictConfig, OmegaConf
from testing_utils import REPO
from torchtune import config as tt_config
from torchtune.config._utils import _get_component_from_path

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
_RECIPE_RE = re.compile(r"(?:tune run (?:--nproc_per_node \S+ )?(\S+)|python (recipes/\S+\.py))")


def _recipe(cfg_path: Path) -> str:
    """The recipe the config's opening comment runs: a stock name or our ``torchtune_ext/recipes/*.py``."""
    header = "".join(line for line in cfg_path.read_text().splitlines(keepends=True) if line.startswith("#"))
    match = _RECIPE_RE.search(header)
    assert match, f"{cfg_path.name}: the opening comment must give the exact run command"
    return match.group(2) or match.group(1)


def _recipe_source(cfg_path: Path) -> str:
    recipe = _recipe(cfg_path)
    if recipe.startswith("recipes/"):
        return (REPO / recipe).read_text()
    if recipe.startswith("torchtune_ext/recipes/"):  # our recipes, installed from the top-level recipes/
        return (REPO / "recipes" / Path(recipe).name).read_text()
    # torchtune's wheel ships its recipes as a package that refuses imports: find them by path.
    return (Path(torchtune.__file__).parents[1] / "recipes" / f"{recipe}.py").read_text()


def _recipe_keys(source: str) -> set[str]:
    return set(re.findall(r"cfg\.([a-z_]+)\b", source)) | set(
        re.findall(r"cfg\.get\(\s*[\"']([a-z_]+)", source)
    )


def _data_dirs(request: pytest.FixtureRequest) -> dict[str, Callable[[], Path]]:
    """Dataset builder -> a fixture giving a directory it can read."""

    def task(name: str) -> Callable[[], Path]:
        return lambda: request.getfixturevalue("task_data")[name]

    names = ("classify", "detect", "docvqa", "extract")
    tasks = {f"torchtune_ext.datasets.{name}_dataset": task(name) for name in names}
    return {"torchtune_ext.datasets.w2_dataset": lambda: request.getfixturevalue("w2_data"), **tasks}


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO / "configs")) for p in CONFIGS])
def test_config_instantiates(
    path: Path, tiny_checkpoint: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cfg = OmegaConf.load(path)
    # A top-level key is used if the recipe reads it or another key interpolates it (${key}).
    interpolated = set(re.findall(r"\$\{([a-z_]+)\}", path.read_text()))
    unused = set(cfg) - _recipe_keys(_recipe_source(path)) - interpolated
    assert not unused, f"{path.name}: keys the recipe never reads: {sorted(unused)}"

    overrides: dict = {"output_dir": str(tmp_path / "out")}
    if "base_dir" in cfg:
        overrides["base_dir"] = str(tiny_checkpoint)
    if "dataset" in cfg:
        overrides["data_dir"] = str(_data_dirs(request)[cfg.dataset._component_]())
    cfg = OmegaConf.merge(cfg, overrides)
    # The tiny tokenizer stands in for the 11B one (same special-token layout).
    cfg.tokenizer.special_tokens_path = str(tiny_checkpoint / "tokenizer.json")
    recipe = _recipe(path)
    if recipe.startswith("torchtune_ext/recipes/"):
        # Our recipes check their own keys (names, types, component arguments) strictly.
        from torchtune_ext.training import check_config

        module = importlib.import_module(recipe.removesuffix(".py").replace("/", "."))
        check_config(cfg, module.RECIPE_KEYS)
        if cfg.get("dataset_val") is not None:
            validation = tt_config.instantiate(cfg.dataset_val)
            assert validation.ids and validation.task.name == "w2"
    is_11b = "11B" in path.name

    with torch.device("meta") if is_11b else torch.device("cpu"):
        model = tt_config.instantiate(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > (1e10 if is_11b else 1e6)
    transform = tt_config.instantiate(cfg.tokenizer)

    if "dataset" in cfg:
        dataset = tt_config.instantiate(cfg.dataset, transform)
        sample = dataset[0]
        assert sample["tokens"] and any(label != -100 for label in sample["labels"])
        batch = _get_component_from_path(cfg.collate_fn)([sample, dataset[1]])
        assert batch["tokens"].shape[0] == 2
        params = [torch.nn.Parameter(torch.zeros(8))]
        optimizer = tt_config.instantiate(cfg.optimizer, params)
        if "lr_scheduler" in cfg:
            tt_config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=10)
        tt_config.instantiate(cfg.loss)
        tt_config.instantiate(cfg.metric_logger).close()
    _check_checkpointer(cfg.checkpointer, instantiate=not is_11b)


def _check_checkpointer(ckpt_cfg: DictConfig, instantiate: bool) -> None:
    if instantiate:
        tt_config.instantiate(ckpt_cfg)
        return
    # The 11B shards are not here: check the arguments bind and name real things.
    component = _get_component_from_path(ckpt_cfg._component_)
    kwargs = {k: v for k, v in OmegaConf.to_container(ckpt_cfg, resolve=True).items() if k != "_component_"}
    inspect.signature(component).bind(**kwargs)
    from torchtune.training.checkpointing._utils import ModelType

    assert ModelType[kwargs["model_type"]] == ModelType.LLAMA3_VISION
