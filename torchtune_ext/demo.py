"""`make demo`: teach the tiny Llama 3.2 Vision the W-2 task on CPU, and show what it learned.

Every step is the command a user would type, printed before it runs:

1. build the tiny Llama 3.2 Vision base checkpoint (``torchtune_ext.models.make_tiny``);
2. render synthetic W-2 forms (``torchtune_ext.data.synth w2``) and prepare them
   (``torchtune_ext.data.prepare_w2``: train 90 % / test 10 %: the tiny model needs ~850
   distinct training forms to learn the answer format instead of memorising forms);
3. fine-tune with our recipe and its validation (``tune run
   torchtune_ext/recipes/full_finetune_vision.py --config configs/tiny/demo_w2.yaml``): the
   best validated weights land in ``best/``;
4. score the same held-out forms three ways, greedily, with the evaluator's scoring code (the
   recipe's validation path): the base checkpoint, a prior-only baseline (each field's most
   common training value) and the fine-tuned ``best/``, and print one table;
5. export ``best/`` as a servable directory (``torchtune_ext.export``), serve it with
   ``transformers serve`` and evaluate it over HTTP (``eval.serve`` -> ``eval.w2``).

A rerun reuses every output whose settings still match (``demo.json`` records them) and says
so; a changed ``--forms``, ``--epochs``, ``--eval-limit`` or ``--max-new-tokens`` redoes the
steps it affects, and an interrupted fine-tune resumes where it stopped. ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

__all__ = ["main", "loss_curve", "prior_answer", "format_table", "reading_report"]

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/tiny/demo_w2.yaml"
RECIPE = "torchtune_ext/recipes/full_finetune_vision.py"
MANIFEST = "demo.json"
WEIGHTS = "model-00001-of-00001.safetensors"
#: Steps in order; redoing one redoes every later one.
STEPS = ("base", "data", "train", "scores", "export")


def _run(cmd: list[str]) -> None:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(cmd, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"error: step failed (exit {proc.returncode}): {shlex.join(cmd)}")


def loss_curve(log_dir: Path, width: int = 40, max_lines: Optional[int] = None) -> str:
    """Render the per-step losses of a torchtune ``DiskLogger`` log as a text chart.

    Args:
        log_dir (Path): the run's ``logs`` directory.
        width (int): bar width of the largest loss.
        max_lines (Optional[int]): show at most this many steps, evenly spaced (the last included).

    Returns:
        str: one line per step, ``step  loss  bar``.

    Raises:
        FileNotFoundError: if the directory holds no ``log_*.txt``.
    """
    logs = sorted(log_dir.glob("log_*.txt"), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise FileNotFoundError(f"no training log in {log_dir}")
    points: dict[int, float] = {}
    for log in logs:  # a resumed run continues in a new file; the later one wins
        for s, v in re.findall(r"Step (\d+) \| loss:([0-9.eE+-]+)", log.read_text()):
            points[int(s)] = float(v)
    shown = sorted(points.items())
    if max_lines and len(shown) > max_lines:
        stride = -(-len(shown) // max_lines)
        shown = shown[::stride] + ([shown[-1]] if (len(shown) - 1) % stride else [])
    top = max(v for _, v in shown)
    return "\n".join(f"{s:5d}  {v:7.3f}  {'#' * max(1, round(width * v / top))}" for s, v in shown)


def prior_answer(task: Any, split: Any) -> dict[str, Any]:
    """Each field's most common value over a split's ground truths (ties: the first seen).

    Args:
        task (Any): the W-2 task (``eval.tasks.get_task("w2")``).
        split (Any): the training split.

    Returns:
        dict[str, Any]: field -> value, in the fields' order.
    """
    counts: dict[str, collections.Counter] = {}
    for i in range(len(split)):
        for field, value in task.sample(split.row(i), i).target.items():
            counts.setdefault(field, collections.Counter())[json.dumps(value)] += 1
    return {field: json.loads(c.most_common(1)[0][0]) for field, c in counts.items()}


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:5.1f} %"


def format_table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The demo's table: JSON parse rate and normalised/strict field accuracy per model.

    Args:
        rows (Sequence[tuple[str, Mapping[str, Any]]]): (label, W-2 metrics) per model.

    Returns:
        str: a Markdown table.
    """
    width = max(len(label) for label, _ in rows)
    lines = [
        f"| {'model':<{width}} | JSON parsed | accuracy (normalised) | accuracy (strict) |",
        f"|{'-' * (width + 2)}|-------------|-----------------------|-------------------|",
    ]
    for label, m in rows:
        lines.append(
            f"| {label:<{width}} | {_pct(m['json_parse_rate']):>11} | {_pct(m['accuracy']):>21} "
            f"| {_pct(m['accuracy_strict']):>17} |"
        )
    return "\n".join(lines)


class _Manifest:
    """``demo.json``: the settings each step's output was made with."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        self.steps: dict[str, Any] = json.loads(self.path.read_text())["steps"] if self.path.exists() else {}

    def matches(self, step: str, settings: Mapping[str, Any]) -> bool:
        entry = self.steps.get(step)
        return entry is not None and entry.get("settings") == dict(settings) and entry.get("done", False)

    def differences(self, step: str, settings: Mapping[str, Any]) -> str:
        old = (self.steps.get(step) or {}).get("settings") or {}
        changed = [f"{k} {old[k]!r} -> {v!r}" for k, v in settings.items() if k in old and old[k] != v]
        return ", ".join(changed)

    def record(self, step: str, settings: Mapping[str, Any], **info: Any) -> None:
        self.steps[step] = {"settings": dict(settings), "done": True, **info}
        self.path.write_text(json.dumps({"steps": self.steps}, indent=2) + "\n")

    def invalidate_from(self, step: str) -> None:
        for later in STEPS[STEPS.index(step) :]:
            self.steps.pop(later, None)
        self.path.write_text(json.dumps({"steps": self.steps}, indent=2) + "\n")


def _reuse_or_redo(
    manifest: _Manifest, step: str, settings: Mapping[str, Any], what: str, paths: Sequence[Path]
) -> bool:
    """True (and a message) if the step's output can be reused; else clear it and everything after."""
    if manifest.matches(step, settings) and all(p.exists() for p in paths):
        print(f"reusing {what} from an earlier run ({', '.join(str(p) for p in paths)})", flush=True)
        return True
    changed = manifest.differences(step, settings)
    if changed:
        print(f"\n{what}: settings changed ({changed}); redoing it and every step after it", flush=True)
    manifest.invalidate_from(step)
    return False


def _score(
    label: str, checkpoint: Path, base: Path, split: Path, limit: int, budget: Optional[int], out: Path
) -> dict[str, Any]:
    """Greedy answers of an HF checkpoint on the first ``limit`` forms, scored like the evaluator."""
    import torch
    from omegaconf import OmegaConf
    from torchtune import config
    from torchtune.training import FullModelHFCheckpointer

    from torchtune_ext.models import llama3_2_vision_tiny
    from torchtune_ext.training import TaskValidation

    cfg = OmegaConf.load(REPO / CONFIG)
    cfg.base_dir = str(base)
    transform = config.instantiate(cfg.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        state = FullModelHFCheckpointer(
            checkpoint_dir=str(checkpoint),
            checkpoint_files=[WEIGHTS],
            model_type="LLAMA3_VISION",
            output_dir=tmp,
        ).load_checkpoint()["model"]
    model = llama3_2_vision_tiny()
    model.load_state_dict(state, strict=True)
    model.eval()
    validation = TaskValidation(
        task="w2", data=str(split), limit=limit, max_new_tokens=budget, batch_size=min(limit, 8)
    )
    start = time.perf_counter()
    result = validation.run(
        model, transform, step=0, device=torch.device("cpu"), dtype=torch.float32, out_dir=out
    )
    contents = [r["content"] for r in result.records if r["status"] == "ok"]
    print(f"  {label}: {len(contents)} forms in {time.perf_counter() - start:.0f} s -> {out}", flush=True)
    predictions = [
        r["score"]["prediction"] for r in result.records if r["score"] and r["score"]["prediction"]
    ]
    fields = list(result.records[0]["score"]["ground_truth"]) if result.records[0]["score"] else []
    return {
        "metrics": result.metrics,
        "distinct_replies": len(set(contents)),
        # Per field, how many different values the model gave over the forms: 1 means the
        # same value whatever the image, so the field cannot have been read from it.
        "distinct_values": {f: len({json.dumps(p.get(f)) for p in predictions}) for f in fields},
        "max_new_tokens": validation.budget(transform),
    }


def _prior_scores(data: Path, limit: int) -> dict[str, Any]:
    from eval.core.task import Response
    from eval.tasks import get_task

    task = get_task("w2").from_options()
    reply = task.answer(prior_answer(task, task.load(data / "train")))
    test = task.load(data / "test")
    scores = [
        task.score(task.sample(test.row(i), i), Response(status="ok", content=reply, finish_reason="stop"))
        for i in range(min(limit, len(test)))
    ]
    return {"metrics": task.aggregate(scores), "reply": reply}


def reading_report(
    tuned: Mapping[str, float], prior: Mapping[str, float], distinct: Mapping[str, int], forms: int
) -> dict[str, list[str]]:
    """Sort fields by what the fine-tuned model's answers show about reading the image.

    A field can only have been read from the image if the model's value for it changes from
    form to form; it is read *beyond the prior* only if, in addition, the model gets it right
    on more forms than the prior's constant value does.

    Args:
        tuned (Mapping[str, float]): the fine-tuned model's per-field accuracy.
        prior (Mapping[str, float]): the prior baseline's per-field accuracy.
        distinct (Mapping[str, int]): per field, distinct values the model gave over the forms.
        forms (int): forms scored.

    Returns:
        dict[str, list[str]]: ``read`` (varies and beats the prior), ``varies`` (varies, no
        better than the prior), ``constant_better`` / ``constant_worse`` (one value for every
        form, right on more / fewer forms than the prior's).
    """
    report: dict[str, list[str]] = {"read": [], "varies": [], "constant_better": [], "constant_worse": []}
    for field, accuracy in tuned.items():
        gain = round((accuracy - prior.get(field, 0.0)) * forms)
        if distinct.get(field, 1) > 1:
            report["read" if gain >= 1 else "varies"].append(field)
        elif gain >= 1:
            report["constant_better"].append(field)
        elif gain <= -1:
            report["constant_worse"].append(field)
    return report


def _what_it_reads(scores: Mapping[str, Any], forms: int) -> str:
    tuned, prior = scores["fine-tuned"], scores["prior"]
    report = reading_report(
        tuned["metrics"]["per_field_accuracy"],
        prior["metrics"]["per_field_accuracy"],
        tuned["distinct_values"],
        forms,
    )
    n_fields = len(tuned["metrics"]["per_field_accuracy"])
    lines = [
        "What the tiny model can and cannot read: each 612x792 form reaches it as 4 tiles of 56x56 px, so",
        "its text is 2-3 px high, below what its 2-layer, 128-wide vision encoder can resolve.",
        f"On these {forms} forms its replies hold {tuned['distinct_replies']} distinct answer(s); "
        f"{n_fields - len(report['read']) - len(report['varies'])} of {n_fields} fields get the same value "
        "for every form (so nothing of them is read from the image).",
    ]
    if report["read"]:
        lines.append(
            f"Fields it reads beyond the prior (their value changes with the form and beats the prior): "
            f"{', '.join(report['read'])}."
        )
    else:
        lines.append(
            "No field is read beyond the prior: none both changes with the form and beats the prior."
        )
    if report["varies"]:
        lines.append(
            f"Values that change with the form but score no better than the prior: {', '.join(report['varies'])}."
        )
    if report["constant_better"] or report["constant_worse"]:
        lines.append(
            "Where its constant guess differs from the prior's and scores differently on these forms: "
            + "; ".join(
                f"{label} {', '.join(fields)}"
                for label, fields in (
                    ("better:", report["constant_better"]),
                    ("worse:", report["constant_worse"]),
                )
                if fields
            )
            + "."
        )
    lines.append(
        "So its lift over the base checkpoint is the answer format (valid JSON with every field) and each "
        "field's usual value; reading the values off the form takes a real model (configs/11B_*_w2*.yaml)."
    )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the demo.

    Args:
        argv (Optional[list[str]]): arguments (default ``sys.argv[1:]``).

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m torchtune_ext.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("out/demo"), help="where everything goes")
    parser.add_argument(
        "--forms", type=int, default=1000, help="synthetic W-2 forms to render (default 1000)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default 1)")
    parser.add_argument("--eval-limit", type=int, default=8, help="held-out forms in the table (default 8)")
    parser.add_argument(
        "--serve-limit", type=int, default=2, help="of those, forms evaluated through the server (default 2)"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="answer budget per form (default: 1.25 x the longest expected answer)",
    )
    parser.add_argument("--port", type=int, default=8001, help="port of the demo's server (0: any free port)")
    parser.add_argument("--fresh", action="store_true", help="delete --output-dir first")
    args = parser.parse_args(argv)
    for flag in ("forms", "epochs", "eval_limit", "serve_limit"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be >= 1")

    started = time.perf_counter()
    out = (REPO / args.output_dir).resolve() if not args.output_dir.is_absolute() else args.output_dir
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(out)
    py, tune = sys.executable, str(Path(sys.executable).parent / "tune")
    base, synth, data = out / "tiny-llama3.2-vision", out / "w2_synth", out / "w2_synth_train90_test10"
    run, served, report, scores_dir = (
        out / "tiny_full_w2",
        out / "tiny_full_w2_hf",
        out / "eval_w2",
        out / "scores",
    )
    best = run / "best"
    config_sha = hashlib.sha256((REPO / CONFIG).read_bytes()).hexdigest()[:16]

    # 1. base checkpoint
    settings: dict[str, Any] = {"seed": 0}
    if not _reuse_or_redo(manifest, "base", settings, "the base checkpoint", [base / "config.json"]):
        shutil.rmtree(base, ignore_errors=True)
        _run([py, "-m", "torchtune_ext.models.make_tiny", "--output-dir", str(base), "--seed", "0"])
        manifest.record("base", settings)

    # 2. data
    settings = {"forms": args.forms, "seed": 0}
    if not _reuse_or_redo(
        manifest, "data", settings, f"the {args.forms} synthetic forms", [data / "dataset_dict.json"]
    ):
        shutil.rmtree(synth, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        _run([py, "-m", "torchtune_ext.data.synth", "w2", "--num", str(args.forms), "--output-dir", str(synth),
              "--seed", "0"])  # fmt: skip
        _run([py, "-m", "torchtune_ext.data.prepare_w2", "--source", str(synth), "--train-ratio", "0.9",
              "--seed", "42", "--output-dir", str(data)])  # fmt: skip
        manifest.record("data", settings)

    # 3. fine-tune (an interrupted run of the same settings resumes)
    settings = {"forms": args.forms, "epochs": args.epochs, "config_sha256": config_sha}
    cmd = [tune, "run", RECIPE, "--config", CONFIG, f"base_dir={base}", f"data_dir={data}", f"output_dir={run}",
           f"epochs={args.epochs}"]  # fmt: skip
    earlier = manifest.steps.get("train") or {}
    interrupted = earlier.get("settings") == settings and not earlier.get("done")
    if not _reuse_or_redo(
        manifest, "train", settings, f"the {args.epochs}-epoch fine-tune", [best / WEIGHTS]
    ):
        if interrupted and (run / "recipe_state" / "recipe_state.pt").is_file():
            print(
                "\nan earlier demo stopped during this fine-tune: resuming it from its last save point",
                flush=True,
            )
            cmd.append("resume_from_checkpoint=True")
        else:
            shutil.rmtree(run, ignore_errors=True)
        manifest.steps["train"] = {"settings": settings, "done": False}
        manifest.path.write_text(json.dumps({"steps": manifest.steps}, indent=2) + "\n")
        _run(cmd)
        manifest.record("train", settings)
    best_info = json.loads((best / "best.json").read_text())
    print(
        f"\nfine-tuned checkpoint: {best} (best validation: {best_info['metric']} "
        f"{_pct(best_info['value']).strip()} at step {best_info['step']})"
    )
    print(f"training log: {run / 'logs'}; plots: {run / 'plots'} (loss.png, validation.png, memory.png)")
    print(f"loss per step:\n{loss_curve(run / 'logs', max_lines=20)}", flush=True)

    # 4. the table: base, prior, fine-tuned on the same held-out forms
    settings = {"forms": args.forms, "epochs": args.epochs, "config_sha256": config_sha, "eval_limit": args.eval_limit,
                "max_new_tokens": args.max_new_tokens}  # fmt: skip
    scores_file = scores_dir / "scores.json"
    if _reuse_or_redo(manifest, "scores", settings, "the held-out scores", [scores_file]):
        scores = json.loads(scores_file.read_text())
    else:
        test = data / "test"
        print(f"\nscoring the first {args.eval_limit} forms of {test}: greedy answers, scored by eval.tasks.w2 "
              "(the recipe's validation code, in this process)", flush=True)  # fmt: skip
        scores = {
            "base": _score(
                "base checkpoint", base, base, test, args.eval_limit, args.max_new_tokens, scores_dir / "base"
            ),
            "prior": _prior_scores(data, args.eval_limit),
            "fine-tuned": _score(
                "fine-tuned best/",
                best,
                base,
                test,
                args.eval_limit,
                args.max_new_tokens,
                scores_dir / "fine-tuned",
            ),  # fmt: skip
        }
        scores_file.parent.mkdir(parents=True, exist_ok=True)
        scores_file.write_text(json.dumps(scores, indent=2) + "\n")
        manifest.record("scores", settings)
    budget = scores["fine-tuned"]["max_new_tokens"]
    forms = int(scores["fine-tuned"]["metrics"]["documents"])
    rows = [
        ("base tiny checkpoint", scores["base"]["metrics"]),
        ("prior only (most common training value)", scores["prior"]["metrics"]),
        (f"fine-tuned (best/, step {best_info['step']})", scores["fine-tuned"]["metrics"]),
    ]
    lift = scores["fine-tuned"]["metrics"]["accuracy"] - scores["base"]["metrics"]["accuracy"]
    print(
        f"\nW-2 fields on {forms} held-out forms (test split rows 0-{forms - 1}; greedy, {budget} new tokens):"
    )
    print(format_table(rows))
    print(f"fine-tuned - base: {100 * lift:+.1f} points of normalised accuracy\n")
    print(_what_it_reads(scores, forms), flush=True)

    # 5. the product path: export best/, serve it, evaluate over HTTP
    settings = {"forms": args.forms, "epochs": args.epochs, "config_sha256": config_sha}
    if not _reuse_or_redo(manifest, "export", settings, "the exported model", [served / "config.json"]):
        shutil.rmtree(served, ignore_errors=True)
        _run([py, "-m", "torchtune_ext.export", "--checkpoint-dir", str(best), "--base-dir", str(base),
              "--output-dir", str(served)])  # fmt: skip
        manifest.record("export", settings)
    shutil.rmtree(report, ignore_errors=True)
    limit = min(args.serve_limit, args.eval_limit)
    _run([py, "-m", "eval.serve", "--model", str(served), "--port", str(args.port), "--dataset", str(data / "test"),
          "--eval-output", str(report), "--eval-args", f"--limit {limit} --max_tokens {budget}"])  # fmt: skip
    print(
        f"\ndone in {time.perf_counter() - started:.0f} s.\nfine-tuned checkpoint: {best}\n"
        f"served (exported from it): {served}\nevaluation report: {report / 'report.json'}\n"
        "note: transformers serve computes slightly different image features than torchtune (see "
        "torchtune_ext/models/llama3_2_vision/README.md), so its scores on the first "
        f"{limit} forms may differ a little from the table's."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
