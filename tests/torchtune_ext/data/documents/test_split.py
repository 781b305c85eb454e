"""Document-level split: deterministic, no document in two splits, stable when documents are added."""

import json
import shutil
from pathlib import Path

import pytest

from eval.tasks.extract import load_extract, load_schema
from torchtune_ext.data.documents.split import assign_split, main, split_documents


def _pages(path: Path) -> list[dict]:
    return [
        json.loads(x) for x in (path / "data.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()
    ]


def _doc_splits(out: Path) -> dict[str, str]:
    where: dict[str, str] = {}
    for name in ("train", "validation", "test"):
        if (out / name / "data.jsonl").is_file():
            for row in _pages(out / name):
                assert where.setdefault(row["doc_id"], name) == name, f"{row['doc_id']} is in two splits"
    return where


def test_assignment_is_a_pure_function_of_seed_and_document() -> None:
    docs = [f"doc-{i}" for i in range(2000)]
    first = [assign_split(d, 0, 0.2, 0.1) for d in docs]
    assert first == [assign_split(d, 0, 0.2, 0.1) for d in docs]
    shares = {name: first.count(name) / len(docs) for name in ("train", "validation", "test")}
    assert shares["test"] == pytest.approx(0.2, abs=0.03) and shares["validation"] == pytest.approx(
        0.1, abs=0.03
    )
    assert first != [assign_split(d, 1, 0.2, 0.1) for d in docs]  # the seed matters
    # growing the test share only moves documents from validation/train into test, never out of it
    bigger = [assign_split(d, 0, 0.3, 0.1) for d in docs]
    assert all(b == "test" for a, b in zip(first, bigger, strict=True) if a == "test")


def test_split_writes_readable_splits_without_straddling_documents(
    invoices: Path, labelled_pages: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    report = split_documents(labelled_pages, invoices / "schema.json", out, test=0.5, seed=3)
    splits = _doc_splits(out)
    assert sum(report.pages.values()) == 6 and len(splits) == 4
    schema = load_schema(out / "schema.json")
    for name, n in report.pages.items():
        if n:
            loaded = load_extract(out / name, schema)  # the evaluator's and the builder's reader
            assert len(loaded) == n and all(r.image.is_relative_to(out / name) for r in loaded)
    summary = json.loads((out / "split.json").read_text())
    assert summary["settings"] == {"seed": 3, "test": 0.5, "validation": 0.0}
    # the same command again writes the same files
    before = {p: p.read_bytes() for p in out.rglob("data.jsonl")}
    split_documents(labelled_pages, invoices / "schema.json", out, test=0.5, seed=3)
    assert before == {p: p.read_bytes() for p in out.rglob("data.jsonl")}


def test_adding_documents_moves_none_of_the_old_ones(invoices: Path, tmp_path: Path) -> None:
    from torchtune_ext.data.documents.ingest import ingest
    from torchtune_ext.data.synth.extract import generate_extract

    more = generate_extract(tmp_path / "more", documents=6, seed=1)
    pages = tmp_path / "pages"
    ingest([invoices / "pdfs"], pages, labels_dir=invoices / "labels", dpi=20, workers=1)
    split_documents(pages, invoices / "schema.json", tmp_path / "data", test=0.5, validation=0.2)
    old = _doc_splits(tmp_path / "data")
    ingest([more / "pdfs"], pages, labels_dir=more / "labels", dpi=20, workers=1)
    split_documents(pages, invoices / "schema.json", tmp_path / "data", test=0.5, validation=0.2)
    new = _doc_splits(tmp_path / "data")
    assert len(new) == 10 and {d: new[d] for d in old} == old


def test_resplitting_with_other_settings_is_refused(
    invoices: Path, labelled_pages: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "data"
    args = [
        "--pages",
        str(labelled_pages),
        "--schema",
        str(invoices / "schema.json"),
        "--output-dir",
        str(out),
    ]
    assert main([*args, "--test", "0.5"]) == 0
    assert main([*args, "--test", "0.3"]) == 2
    assert "would move documents between splits" in capsys.readouterr().err
    assert main([*args, "--test", "0.3", "--force"]) == 0


def test_review_and_invalid_pages_are_left_out(
    invoices: Path, labelled_pages: Path, tmp_path: Path, capsys
) -> None:
    pages = tmp_path / "pages"
    shutil.copytree(labelled_pages, pages)
    rows = _pages(pages)
    rows[0]["target"]["date"] = "not a date"  # an invalid source label
    del rows[1]["target"]  # unlabelled
    del rows[2]["target"]  # ... but waiting in review
    (pages / "data.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    (pages / "review.jsonl").write_text(json.dumps({**rows[2], "target": None, "reason": "x"}) + "\n")
    del rows[3]["target"]  # unlabelled in data.jsonl, labelled by the teacher
    (pages / "labels.jsonl").write_text(
        json.dumps({**rows[3], "target": rows[4]["target"]}, ensure_ascii=False) + "\n"
    )
    args = [
        "--pages",
        str(pages),
        "--schema",
        str(invoices / "schema.json"),
        "--output-dir",
        str(tmp_path / "d"),
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"left out: {pages / 'data.jsonl'}:1: 'target' does not match the schema")
    assert "not included: 1 pages in review.jsonl, 1 unlabelled pages" in captured.out
    written = [r for name in ("train", "test") for r in _pages(tmp_path / "d" / name)]
    assert sorted(r["id"] for r in written) == sorted(rows[k]["id"] for k in (3, 4, 5))
    assert (
        next(r for r in written if r["id"] == rows[3]["id"])["target"] == rows[4]["target"]
    )  # the teacher's
