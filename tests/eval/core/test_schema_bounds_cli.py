"""`--structured --bounded_schema`: the bounded variant is sent only when asked, and scored as usual."""

from pathlib import Path
from typing import Any

import pytest

from eval.core.schema_bounds import BoundedSchemaTask, bounded_json_schema
from eval.tasks.w2 import W2Form, target_json
from eval.tasks.w2.task import W2Task
from eval.w2 import main


@pytest.fixture
def no_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)


def _args(url: str, split: Path, out: Path, *extra: str) -> list[str]:
    return ["--server_url", url, "--model", "fault", "--dataset", str(split), "--output_dir", str(out),
            "--timeout", "5", "--retries", "0", "--no_progress", *extra]  # fmt: skip


def test_bounded_schema_sent_only_when_asked(
    tmp_path: Path, kit: Any, fault_server: Any, no_chart: None
) -> None:
    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))] * 2})
    assert main(_args(srv.url, split, tmp_path / "a", "--structured")) == 0
    assert (
        main(
            _args(
                srv.url, split, tmp_path / "b", "--structured", "--bounded-schema", "--max-string-chars", "16"
            )
        )
        == 0
    )
    default, bounded = (seen.body["response_format"]["json_schema"] for seen in srv.seen)
    assert default["schema"] == W2Form.model_json_schema()
    assert bounded == {
        "name": "W2Form",
        "schema": bounded_json_schema(W2Form.model_json_schema(), 16),
        "strict": True,
    }
    assert bounded["schema"] != default["schema"]


def test_bounded_schema_needs_structured_and_is_part_of_the_run(
    tmp_path: Path, kit: Any, fault_server: Any, capsys: pytest.CaptureFixture[str], no_chart: None
) -> None:
    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))]})
    assert main(_args(srv.url, split, tmp_path / "x", "--bounded_schema")) == 2
    assert "add --structured" in capsys.readouterr().err
    assert (
        main(
            _args(
                srv.url, split, tmp_path / "x", "--structured", "--bounded_schema", "--max_string_chars", "0"
            )
        )
        == 2
    )
    assert "--max_string_chars must be >= 1" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(_args(srv.url, split, out, "--structured")) == 0
    capsys.readouterr()
    assert main(_args(srv.url, split, out, "--resume", "--structured", "--bounded_schema")) == 2
    assert "bounded_schema: None -> 64" in capsys.readouterr().err
    assert len(srv.seen) == 1


def test_wrapper_delegates_everything_but_the_schema() -> None:
    task = BoundedSchemaTask(W2Task(), max_string_chars=8)
    assert task.name == "w2" and task.target_column == "ground_truth"
    fmt = task.response_format()
    assert fmt["json_schema"]["schema"] == bounded_json_schema(W2Form.model_json_schema(), 8)
    assert W2Task().response_format()["json_schema"]["schema"] == W2Form.model_json_schema()

    class NoSchema:
        name = "free"

        def response_format(self):
            return None

    assert BoundedSchemaTask(NoSchema()).response_format() is None


def test_resume_without_max_tokens_keeps_the_recorded_limit(
    tmp_path: Path, kit: Any, fault_server: Any, capsys: pytest.CaptureFixture[str], no_chart: None
) -> None:
    gts = [kit.w2_record(0), kit.w2_record(1)]
    split = kit.save_split(tmp_path / "test", gts)
    images = {kit.b64(kit.png_bytes(i)): i for i in range(2)}
    srv = fault_server(images, {0: [kit.ok(target_json(gts[0]))], 1: [kit.ok(target_json(gts[1]))]})
    out = tmp_path / "run"
    assert main(_args(srv.url, split, out, "--limit", "1", "--max_tokens", "777")) == 0
    # Resuming without the flag continues the recorded run instead of refusing the default limit.
    assert main(_args(srv.url, split, out, "--resume")) == 0
    assert [seen.body["max_tokens"] for seen in srv.seen] == [777, 777]
    # An explicit, different limit is still a different run.
    assert main(_args(srv.url, split, out, "--resume", "--max_tokens", "100")) == 2
    assert "max_tokens: 777 -> 100" in capsys.readouterr().err
