"""The task registry: one folder per task, looked up by name, built from named options."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from eval.__main__ import main as eval_main
from eval.core.cli import build_parser
from eval.core.task import Task
from eval.tasks import UnknownTaskError, get_task, task_names


def test_every_task_folder_is_registered_under_its_name() -> None:
    assert {"w2", "classify", "detect", "docvqa"} <= set(task_names())
    for name in task_names():
        task = get_task(name)
        assert issubclass(task, Task) and task.name == name
        assert task.description and task.dataset_help and task.headline_metric
        assert (Path(__file__).parents[3] / "eval" / "tasks" / name / "task.py").is_file()


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskError, match=r"unknown task 'ocr'; known tasks: classify, detect, docvqa"):
        get_task("ocr")


def test_options_are_the_flags_and_unknown_options_name_the_valid_ones(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("A\nB | bee\n")
    classify = get_task("classify").from_options(labels=str(labels))
    from eval.tasks.classify import prompt

    assert classify.instruction() == prompt(["A", "B"])
    assert classify.options() == {"labels": ["A", "B"], "aliases": {"bee": "B"}}
    with pytest.raises(ValueError, match="task 'classify' has no option lables; its options: labels"):
        get_task("classify").from_options(lables=str(labels))
    with pytest.raises(ValueError, match="needs a labels file"):
        get_task("classify").from_options()
    assert get_task("detect").option_defaults() == {
        "box_format": "pixel", "object_name": "nutrition table", "iou_threshold": 0.5, "overlays": 0
    }  # fmt: skip
    detect = get_task("detect").from_options(object_name="logo")
    from eval.tasks.detect import prompt as detect_prompt

    assert detect.instruction() == detect_prompt("logo") != detect_prompt()
    with pytest.raises(ValueError, match=r"--iou_threshold must be in \(0, 1\]"):
        get_task("detect").from_options(iou_threshold=0)
    assert get_task("docvqa").from_options().instruction() is None  # the prompt depends on the question


def test_from_args_takes_the_task_flags_of_the_shared_parser(tmp_path: Path) -> None:
    parser = build_parser(get_task("detect"))
    args = parser.parse_args(["--model", "m", "--dataset", "d", "--object_name", "logo", "--overlays", "3"])
    task = get_task("detect").from_args(args)
    assert (task.object_name, task.overlays, task.iou_threshold) == ("logo", 3, 0.5)
    assert isinstance(args, argparse.Namespace) and args.model == "m"


def test_python_m_eval_dispatches_by_task_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main(["--help"]) == 0
    assert "TASK: classify | detect | docvqa" in capsys.readouterr().out
    assert eval_main(["ocr", "--model", "m"]) == 2
    assert "unknown task 'ocr'" in capsys.readouterr().err
    assert eval_main(["classify", "--model", "m", "--dataset", "d"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the classify task needs a labels file (--labels, or the labels option)"
    )
