"""Strict recipe configs: every key is one the recipe reads, with a value of the right type.

torchtune 0.6.1 recipes read their config with ``cfg.get(key, default)``, so a misspelt key
(``batch_szie=2``) is silently ignored and a wrong value (``epochs=abc``) fails later without
naming the key. Our recipes declare their keys instead: ``RECIPE_KEYS``, a mapping of every
top-level key the recipe reads to a :class:`Key` (type, default, help), checked by
:func:`strict_config` before anything is built:

* a top-level key must be declared, or be a variable other values interpolate (``${base_dir}``);
* a ``_component_`` subtree's keys must be parameters of the component (checked against its
  signature, recursively for nested components), and its values must fit the parameters'
  simple annotations (``int``, ``float``, ``bool``, ``str``, optional or unions of those);
* a :class:`Section` subtree's keys must be its declared keys;
* a declared key's value must have the declared type.

Each problem names the dotted key and the nearest valid key (:mod:`difflib`); all problems
are reported on one line. An optional component whose ``_component_`` is null is off
(``dataset_val=null`` on the command line). The checked config gets every missing key's default and refuses
reading an undeclared top-level key (OmegaConf struct mode), so a recipe cannot read a key it
did not declare, and a test checks that it reads every key it declares.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import types
import typing
from collections import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["REQUIRED", "Component", "ConfigError", "Key", "Section", "check_config", "strict_config"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a key that has none: the config must set it.
REQUIRED: Any = _Required()


class ConfigError(ValueError):
    """A config the recipe cannot run with; the message is one line naming every bad key."""


class Component:
    """Type of a key whose value is a ``_component_`` subtree (instantiated by the recipe).

    Args:
        *passed (str): parameters the recipe passes itself (e.g. the optimizer's ``params``):
            setting them in the config is an error.
        many (bool): a list of such subtrees is accepted too (e.g. datasets to concatenate).
    """

    def __init__(self, *passed: str, many: bool = False) -> None:
        self.passed = tuple(passed)
        self.many = many

    def __repr__(self) -> str:
        return "component"


@dataclass(frozen=True)
class Section:
    """Type of a key whose value is a plain mapping of declared keys.

    Attributes:
        keys (Mapping[str, Key]): the section's keys.
    """

    keys: Mapping[str, Key]

    def __repr__(self) -> str:
        return "section"


@dataclass(frozen=True)
class Key:
    """One config key a recipe reads.

    Attributes:
        type (Any): ``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``, ``Any``,
            ``Optional[...]``/unions of those, a :class:`Component` or a :class:`Section`.
        default (Any): the value when the config leaves the key out; :data:`REQUIRED` if none.
        help (str): what it does (for the documentation).
    """

    type: Any
    default: Any = REQUIRED
    help: str = field(default="", compare=False)


# ----------------------------------------------------------------------------- types


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, Component):
        return "a _component_ mapping" + (" or a list of them" if tp.many else "")
    if isinstance(tp, Section):
        return "a mapping"
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if typing.get_origin(tp) is not None:
        return _type_name(typing.get_origin(tp))
    return {list: "a list", dict: "a mapping", tuple: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value: Any, tp: Any) -> Optional[bool]:
    """Whether ``value`` fits the type; None when the type is too complex to check."""
    if tp is Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    if isinstance(tp, Component):
        if tp.many and isinstance(value, (list, tuple)):
            return bool(value) and all(isinstance(v, Mapping) and "_component_" in v for v in value)
        return isinstance(value, Mapping) and "_component_" in value
    if isinstance(tp, Section):
        return isinstance(value, Mapping)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        results = [_fits(value, a) for a in typing.get_args(tp)]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin in (list, tuple, abc.Sequence) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin in (dict, abc.Mapping) or tp is dict:
        return isinstance(value, Mapping)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and issubclass(tp, torch.Tensor):
        return isinstance(value, torch.Tensor)  # never from YAML
    return None


# ----------------------------------------------------------------------------- checks


def _nearest(name: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
    return match[0] if match else ""


def _unknown(path: str, name: str, valid: list[str], what: str) -> str:
    near = _nearest(name, valid)
    hint = f"; did you mean {_join(path, near)!r}?" if near else ""
    return f"unknown key {_join(path, name)!r} ({what}){hint}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _bad_type(path: str, value: Any, tp: Any) -> str:
    return f"{path!r} must be {_type_name(tp)}, got {value!r}"


def _component_params(target: Any) -> tuple[dict[str, inspect.Parameter], bool, dict[str, Any]]:
    """Keyword parameters of a component, whether it takes ``**kwargs``, and its type hints."""
    func = target.__init__ if inspect.isclass(target) else target
    sig = inspect.signature(target)
    params = {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # annotations naming what is not importable here: check names only
        hints = {}
    return params, var_kw, hints


def _check_component(path: str, node: Mapping[str, Any], passed: tuple[str, ...], errors: list[str]) -> None:
    from torchtune.config._utils import _get_component_from_path

    name = node.get("_component_")
    if not isinstance(name, str):
        errors.append(f"{_join(path, '_component_')!r} must be a dotted import path, got {name!r}")
        return
    try:
        target = _get_component_from_path(name)
    except Exception as e:  # torchtune raises InstantiationError with its own message
        errors.append(f"{_join(path, '_component_')!r}: cannot import {name!r} ({str(e).splitlines()[0]})")
        return
    try:
        params, var_kw, hints = _component_params(target)
    except (TypeError, ValueError):  # no introspectable signature (some builtins)
        return
    valid = [p for p in params if p not in passed]
    for key, value in node.items():
        if key == "_component_":
            continue
        where = _join(path, key)
        if key in passed:
            errors.append(f"{where!r} is passed by the recipe; remove it from the config")
            continue
        if key not in params:
            if not var_kw:
                errors.append(_unknown(path, key, valid, f"not a parameter of {name}"))
            continue
        if isinstance(value, Mapping) and "_component_" in value:
            _check_component(where, value, (), errors)
            continue
        tp = hints.get(key)
        if tp is not None and _fits(value, tp) is False:
            if params[key].default is None and value is None:
                continue
            errors.append(_bad_type(where, value, tp))


def _check_keys(
    path: str, node: Mapping[str, Any], keys: Mapping[str, Key], variables: set[str], errors: list[str]
) -> None:
    for name, value in node.items():
        where = _join(path, name)
        if name not in keys:
            if not path and name in variables:
                continue
            errors.append(_unknown(path, name, sorted(set(keys) | variables), "not read by this recipe"))
            continue
        tp = keys[name].type
        if value is None and keys[name].default is None:
            continue
        if _fits(value, tp) is False:
            errors.append(_bad_type(where, value, tp))
            continue
        if isinstance(tp, Section):
            _check_keys(where, value, tp.keys, set(), errors)
        elif isinstance(tp, Component):
            for k, sub in enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]:
                _check_component(where if k is None else f"{where}[{k}]", sub, tp.passed, errors)
    for name, key in keys.items():
        if key.default is REQUIRED and name not in node:
            errors.append(f"missing required key {_join(path, name)!r} ({_type_name(key.type)})")


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def check_config(cfg: DictConfig, keys: Mapping[str, Key]) -> DictConfig:
    """Check a merged (YAML + command line) config against a recipe's keys.

    Args:
        cfg (DictConfig): the config as torchtune's ``config.parse`` merged it.
        keys (Mapping[str, Key]): the recipe's ``RECIPE_KEYS``.

    Returns:
        DictConfig: a copy with every missing key set to its default, in struct mode at the top
        level (reading an undeclared key raises), component subtrees left open.

    Raises:
        ConfigError: naming every unknown, misspelt, missing or wrongly typed key, on one line.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    variables = set(_VARIABLE.findall(OmegaConf.to_yaml(cfg)))
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"config: {str(e).splitlines()[0]}") from None
    assert isinstance(raw, dict) and isinstance(resolved, dict)
    # torchtune's command line cannot remove a component (`~key` is refused) and turns
    # `key=null` into `key._component_=null`: that switches an optional component off.
    for name, key in keys.items():
        node = resolved.get(name)
        if isinstance(key.type, Component) and key.default is None and isinstance(node, dict):
            if "_component_" in node and node["_component_"] is None:
                resolved[name] = raw[name] = None
    errors: list[str] = []
    _check_keys("", resolved, keys, variables, errors)
    if errors:
        raise ConfigError("; ".join(errors))
    out = OmegaConf.create(raw)
    for name, key in keys.items():
        if name not in out:
            out[name] = key.default
    OmegaConf.set_struct(out, True)
    for name in out:
        if isinstance(out[name], DictConfig):
            OmegaConf.set_struct(out[name], False)
    return out


def strict_config(cfg: DictConfig, keys: Mapping[str, Key]) -> DictConfig:
    """:func:`check_config` for a recipe's entry point: a bad config ends the process.

    Prints ``error: config: <problems>`` (one line, from rank 0 only when distributed) and
    exits with status 2 before anything is built.

    Args:
        cfg (DictConfig): the merged config.
        keys (Mapping[str, Key]): the recipe's keys.

    Returns:
        DictConfig: the checked config (see :func:`check_config`).
    """
    import os

    try:
        return check_config(cfg, keys)
    except ConfigError as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"error: config: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
