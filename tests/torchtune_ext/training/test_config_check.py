"""Strict recipe configs: unknown, misspelt and wrongly typed keys are named; the key list cannot drift."""

from __future__ import annotations

import importlib
import re
from argparse import Namespace
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError
from testing_utils import REPO
from torchtune.config._utils import _merge_yaml_and_cli_args

from torchtune_ext.training import ConfigError, Key, Section, check_config

RECIPES = ["full_finetune_vision", "lora_finetune_vision", "full_finetune_vision_distributed"]
CONFIG = REPO / "configs" / "tiny" / "full_w2_val.yaml"


def _keys(recipe: str = "full_finetune_vision") -> dict[str, Key]:
    return importlib.import_module(f"torchtune_ext.recipes.{recipe}").RECIPE_KEYS


def _merged(cli: list[str], yaml: Path = CONFIG) -> DictConfig:
    """The config exactly as torchtune's ``config.parse`` merges YAML and command line."""
    return _merge_yaml_and_cli_args(Namespace(**OmegaConf.to_container(OmegaConf.load(yaml))), cli)


def _error(cli: list[str], yaml: Path = CONFIG) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(_merged(cli, yaml), _keys())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shipped_config_passes_and_gets_every_default() -> None:
    cfg = check_config(_merged([]), _keys())
    assert set(_keys()) <= set(cfg)
    assert cfg.batch_size == 4 and cfg.log_every_n_steps == 1 and cfg.lr_scheduler is None
    with pytest.raises(ConfigAttributeError):
        _ = cfg.batch_szie  # a recipe cannot read an undeclared key
    cfg.optimizer["fused"] = False  # component subtrees stay open for the recipe


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        (["batch_szie=2"], "unknown key 'batch_szie' (not read by this recipe); did you mean 'batch_size'?"),
        (["base_dri=x"], "unknown key 'base_dri' (not read by this recipe); did you mean 'base_dir'?"),
        (["optimizer.lrr=1"], "unknown key 'optimizer.lrr' (not a parameter of torch.optim.AdamW); did you mean 'optimizer.lr'?"),
        (["dataset_val.limt=3"], "did you mean 'dataset_val.limit'?"),
        (["keep_best.metrc=x"], "unknown key 'keep_best.metrc' (not read by this recipe); did you mean 'keep_best.metric'?"),
        (["model.decoder_trainble=True"], "did you mean 'model.decoder_trainable'?"),
        (["epochs=abc"], "'epochs' must be int, got 'abc'"),
        (["optimizer.lr=abc"], "'optimizer.lr' must be float or Tensor, got 'abc'"),
        (["shuffle=3"], "'shuffle' must be bool, got 3"),
        (["early_stopping.patience=null"], "'early_stopping.patience' must be int, got None"),
        (["optimizer.params=1"], "'optimizer.params' is passed by the recipe; remove it from the config"),
        (["~batch_size"], "missing required key 'batch_size' (int)"),
        (["loss._component_=torchtune.modules.loss.NoSuchLoss"], "'loss._component_': cannot import"),
    ],
)  # fmt: skip
def test_bad_override_is_named_on_one_line(cli: list[str], expected: str) -> None:
    assert expected in _error(cli)


def test_null_switches_an_optional_component_off() -> None:
    cfg = check_config(_merged(["dataset_val=null", "lr_scheduler=null"]), _keys())
    assert cfg.dataset_val is None and cfg.lr_scheduler is None
    assert "'model._component_' must be a dotted import path" in _error(["model=null"])


def test_every_problem_is_reported_at_once() -> None:
    message = _error(["batch_szie=2", "foo_bar=1", "epochs=abc"])
    assert "'batch_szie'" in message and "'foo_bar'" in message and "'epochs' must be int" in message


def test_nested_misspelling_in_the_yaml_is_named(tmp_path: Path) -> None:
    yaml = tmp_path / "c.yaml"
    yaml.write_text(CONFIG.read_text().replace("  max_num_tiles: 4", "  max_num_tile: 4"))
    assert "unknown key 'tokenizer.max_num_tile'" in _error([], yaml)
    assert "did you mean 'tokenizer.max_num_tiles'?" in _error([], yaml)


def test_variables_used_by_interpolation_are_allowed_and_unused_ones_are_not(tmp_path: Path) -> None:
    check_config(_merged(["data_dir=/elsewhere"]), _keys())  # ${data_dir} uses it
    yaml = tmp_path / "c.yaml"
    yaml.write_text(CONFIG.read_text() + "\nscratch_dir: /tmp\n")
    assert "unknown key 'scratch_dir'" in _error([], yaml)


def test_sections_and_lists_of_components() -> None:
    keys = {"section": Key(Section({"a": Key(int, 1)}), None), "items": Key(list, [])}
    assert check_config(OmegaConf.create({"section": {"a": 2}}), keys).section.a == 2
    with pytest.raises(ConfigError, match="unknown key 'section.b'"):
        check_config(OmegaConf.create({"section": {"b": 2}}), keys)
    cfg = _merged(["dataset=[]"])
    cfg.dataset = [
        OmegaConf.to_container(cfg.dataset),
        {"_component_": "torchtune_ext.datasets.w2_dataset", "dta_dir": "x"},
    ]
    with pytest.raises(
        ConfigError, match=r"unknown key 'dataset\[1\]\.dta_dir'.*did you mean 'dataset\[1\]\.data_dir'"
    ):
        check_config(cfg, _keys())


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_reads_exactly_the_keys_it_declares(recipe: str) -> None:
    source = (REPO / "recipes" / f"{recipe}.py").read_text()
    read = set(re.findall(r"\bcfg\.([a-z_]+)\b", source)) - {"get"}
    assert read == set(_keys(recipe)), (
        f"read but not declared: {sorted(read - set(_keys(recipe)))}; "
        f"declared but never read: {sorted(set(_keys(recipe)) - read)}"
    )
    assert "cfg.get(" not in source, "read keys as cfg.<key>, so that undeclared ones fail"


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_key_is_documented(recipe: str) -> None:
    readme = (REPO / "recipes" / "README.md").read_text()
    missing = [k for k in _keys(recipe) if f"`{k}`" not in readme]
    assert not missing, f"recipes/README.md does not describe {missing}"


def test_the_documented_wandb_override_passes() -> None:
    # recipes/README.md's W&B command (not run: it needs an account). WandBLogger takes **kwargs
    # (passed to wandb.init), so its own keys are not checked further.
    wandb = [
        "metric_logger._component_=torchtune.training.metric_logging.WandBLogger",
        "metric_logger.project=w2",
    ]
    cfg = check_config(_merged(wandb), _keys())
    assert cfg.metric_logger.project == "w2"
