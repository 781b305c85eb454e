"""Validation answers like the evaluator asks, scores with the evaluator's code, and leaves training untouched."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from torchtune import training

from eval.core.cli import main as eval_main
from eval.core.runner import ResultsLog, summarize
from eval.core.task import Response
from torchtune_ext.modules import LinearCrossEntropyLoss
from torchtune_ext.training import ConfigError, TaskValidation


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Path):
    """The tiny base model and its transform, loaded once."""
    from torchtune_ext.models import llama3_2_vision_tiny, llama3_2_vision_transform

    ckpt = training.FullModelHFCheckpointer(
        checkpoint_dir=str(tiny_checkpoint),
        checkpoint_files=["model-00001-of-00001.safetensors"],
        model_type="LLAMA3_VISION",
        output_dir=str(tiny_checkpoint.parent / "validation_test_out"),
    )
    model = llama3_2_vision_tiny()
    model.load_state_dict(ckpt.load_checkpoint()["model"])
    transform = llama3_2_vision_transform(
        path=str(tiny_checkpoint / "original" / "tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        tile_size=56,
        max_num_tiles=4,
        patch_size=14,
        image_dtype="float32",
        max_seq_len=2048,
    )
    return model, transform


def _run(validation: TaskValidation, model: torch.nn.Module, transform, out: Path | None = None):
    return validation.run(
        model, transform, step=3, device=torch.device("cpu"), dtype=torch.float32, out_dir=out
    )


def test_records_rescore_to_the_same_metrics_with_the_evaluator(tiny, w2_data: Path, tmp_path: Path) -> None:
    model, transform = tiny
    validation = TaskValidation(task="w2", data=str(w2_data / "validation"), limit=2, max_new_tokens=6)
    out = tmp_path / "step_3"
    result = _run(validation, model, transform, out)

    records = ResultsLog(out / "predictions.jsonl").read()
    assert sorted(records) == [0, 1]
    for rid, rec in records.items():
        assert (
            rec["status"] == "ok"
            and rec["finish_reason"] == "length"
            and rec["usage"]["completion_tokens"] == 6
        )
        sample = validation.task.sample(validation.split.row(rid), rid)
        fields = {k: rec[k] for k in Response.__dataclass_fields__}
        assert validation.task.score(sample, Response(**fields)) == rec["score"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["step"] == 3 and saved["max_new_tokens"] == 6
    assert summarize(validation.task, records, [0, 1])["metrics"] == saved["metrics"] == result.metrics

    # The evaluator itself, resuming the validation directory: nothing to send, same report numbers.
    evaluated = tmp_path / "evaluated"
    shutil.copytree(out, evaluated)
    args = ["--resume", "--output_dir", str(evaluated), "--dataset", str(w2_data / "validation"),
            "--model", "step_3", "--limit", "2", "--max_tokens", "6", "--seed", "-1",
            "--server_url", "http://127.0.0.1:9/v1", "--no_progress"]  # fmt: skip
    assert eval_main("w2", args) == 0
    report = json.loads((evaluated / "report.json").read_text())
    assert report["run"]["sent"] == 0 and report["metrics"] == saved["metrics"]


def test_model_and_random_state_are_left_as_they_were(tiny, w2_data: Path) -> None:
    model, transform = tiny
    validation = TaskValidation(task="w2", data=str(w2_data / "validation"), limit=1, max_new_tokens=4)
    model.train()
    model.set_num_output_chunks(8)
    torch.manual_seed(123)
    random.seed(7)
    before = (torch.get_rng_state(), random.getstate())
    try:
        _run(validation, model, transform)
        assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
        assert model.training and not model.caches_are_setup()
        assert model.decoder.num_output_chunks == 8
    finally:
        model.set_num_output_chunks(0)
        model.eval()


def test_linear_cross_entropy_model_answers_as_the_plain_one(tiny, w2_data: Path) -> None:
    import copy

    model, transform = tiny
    validation = TaskValidation(task="w2", data=str(w2_data / "validation"), limit=1, max_new_tokens=5)
    plain = _run(validation, model, transform).records
    fused = copy.deepcopy(model)
    LinearCrossEntropyLoss().set_model_output(fused)
    assert fused(torch.tensor([[1, 2, 3]])).shape[-1] == 256  # training: hidden states
    assert [r["content"] for r in _run(validation, fused, transform).records] == [r["content"] for r in plain]
    assert fused(torch.tensor([[1, 2, 3]])).shape[-1] == 256


def test_batches_answer_as_one_row_at_a_time(tiny, w2_data: Path) -> None:
    model, transform = tiny
    single = TaskValidation(task="w2", data=str(w2_data / "test"), limit=3, max_new_tokens=6)
    batched = TaskValidation(task="w2", data=str(w2_data / "test"), limit=3, max_new_tokens=6, batch_size=2)
    answers = [[r["content"] for r in _run(v, model, transform).records] for v in (single, batched)]
    assert len(answers[0]) == 3 and answers[0] == answers[1]  # the short second batch is padded, then dropped


def test_any_registered_task_scores_with_its_own_metric(tiny, tmp_path: Path) -> None:
    from torchtune_ext.data.synth.classify import generate_classify

    model, transform = tiny
    data = generate_classify(tmp_path / "cars", train=0, test=2, num_labels=2)
    validation = TaskValidation(
        task="classify",
        data=str(data / "test"),
        task_options={"labels": str(data / "labels.txt")},
        max_new_tokens=4,
    )
    result = _run(validation, model, transform)
    assert validation.task.headline_metric in result.metrics and result.summary["counts"]["scored"] == 2
    assert result.records[0]["score"] == validation.task.score(
        validation.task.sample(validation.split.row(0), 0),
        Response(**{k: result.records[0][k] for k in Response.__dataclass_fields__}),
    )


def test_default_budget_comes_from_the_targets(tiny, w2_data: Path) -> None:
    _, transform = tiny
    validation = TaskValidation(task="w2", data=str(w2_data / "validation"))
    longest = max(
        len(transform.encode(validation.task.answer(validation.task.sample(validation.split.row(i), i).target),
                             add_bos=False, add_eos=False))
        for i in range(len(validation.split))
    )  # fmt: skip
    assert validation.budget(transform) == -(-5 * longest // 4) + 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "w3"}, "dataset_val.task: unknown task 'w3'"),
        ({"task": "classify", "task_options": {"labls": "x"}}, "dataset_val.task_options: task 'classify' has no option labls"),
        ({"data": "/nonexistent/split"}, "dataset_val.data:"),
        ({"limit": 0}, "dataset_val.limit must be >= 1"),
        ({"batch_size": 0}, "dataset_val.batch_size must be >= 1"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(kwargs: dict, message: str, w2_data: Path) -> None:
    settings = {"task": "w2", "data": str(w2_data / "validation"), **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TaskValidation(**settings)
