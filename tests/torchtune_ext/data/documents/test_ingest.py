"""Ingest: PDFs in a process pool, images with labels, JSONL, preprocessing, bad files, adding more."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from eval.tasks.extract import load_extract, load_schema
from torchtune_ext.data.documents.ingest import ingest, main
from torchtune_ext.data.documents.pages import file_sha256, page_id
from torchtune_ext.data.documents.render import Preprocess


def _locked_pdf(path: Path) -> None:
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "confidential")
    pdf.set_encryption(owner_password="owner", user_password="user", encryption_method=EncryptionMethod.RC4)
    pdf.output(str(path))


def _rows(pages: Path) -> list[dict]:
    return [json.loads(line) for line in (pages / "data.jsonl").read_text(encoding="utf-8").splitlines()]


def test_pdf_pages_keep_document_and_page_and_labels(invoices: Path, labelled_pages: Path) -> None:
    rows = _rows(labelled_pages)
    labels = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (invoices / "labels").glob("*.json")}
    for pdf in sorted((invoices / "pdfs").glob("*.pdf")):
        doc_id = file_sha256(pdf)
        mine = [r for r in rows if r["doc_id"] == doc_id]
        assert [r["page"] for r in mine] == list(range(1, len(labels[pdf.stem]) + 1))
        assert [r["target"] for r in mine] == labels[pdf.stem]  # Arabic text unchanged
        assert all(r["id"] == page_id(doc_id, r["page"]) and r["source"] == str(pdf) for r in mine)
    loaded = load_extract(
        labelled_pages, load_schema(invoices / "schema.json")
    )  # the extract reader reads it
    assert len(loaded) == 6 and any("شركة" in json.dumps(r.target, ensure_ascii=False) for r in loaded)
    with Image.open(labelled_pages / rows[0]["image"]) as im:
        assert im.format == "PNG" and im.size == (292, 414)  # A5 (148 x 210 mm) at 50 dpi


def test_bad_pdfs_are_named_on_one_line_and_the_rest_is_kept(invoices: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    shutil.copytree(invoices / "pdfs", src)
    (src / "garbage.pdf").write_bytes(b"this is not a pdf")
    whole = (src / "invoice-0000.pdf").read_bytes()
    (src / "cut.pdf").write_bytes(whole[: len(whole) // 3])
    (src / "empty.pdf").write_bytes(b"")
    _locked_pdf(src / "locked.pdf")
    out = tmp_path / "pages"
    assert main([str(src), "--output-dir", str(out), "--dpi", "40", "--workers", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("skipped: ") for line in err)
    for name in ("garbage.pdf", "cut.pdf", "empty.pdf", "locked.pdf"):
        assert sum(f"{src / name}: " in line for line in err) == 1
    assert any(line.startswith(f"skipped: {src / 'garbage.pdf'}: not a readable PDF (") for line in err)
    assert any(line.startswith(f"skipped: {src / 'locked.pdf'}: a password-protected PDF (") for line in err)
    assert len(_rows(out)) == 6 and len(list((out / "images").iterdir())) == 6  # the good ones are all there


def test_images_with_same_stem_labels_jsonl_and_preprocessing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (800, 400), (200, 200, 200)).save(src / "scan1.png")
    two_tones = Image.new("RGB", (300, 600), (90, 90, 90))
    two_tones.paste((200, 200, 200), (0, 0, 300, 300))
    two_tones.save(src / "scan2.jpg")
    (src / "scan1.json").write_text(json.dumps({"total": 5}), encoding="utf-8")
    Image.new("RGB", (100, 100)).save(src / "row.png")
    rows = [
        {"image": "row.png", "target": {"total": 7}, "doc_id": "letter-1", "page": 3},
        {"image": "missing.png"},
    ]
    (src / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "pages"
    report = ingest([src], out, preprocess=Preprocess(max_side=200, contrast=1.5), workers=1)
    assert report.pages == 3 and report.labelled == 2
    assert report.problems == [f"{src / 'more.jsonl'}:2: image not found: {(src / 'missing.png').resolve()}"]
    by_source = {Path(r["source"].split(":")[0]).name: r for r in _rows(out)}
    assert by_source["scan1.png"]["target"] == {"total": 5} and "target" not in by_source["scan2.jpg"]
    assert by_source["scan1.png"]["doc_id"] == file_sha256(src / "scan1.png")
    assert (by_source["more.jsonl"]["doc_id"], by_source["more.jsonl"]["page"]) == ("letter-1", 3)
    with Image.open(out / by_source["scan1.png"]["image"]) as im:
        assert im.size == (200, 100)  # longest side 200
    with Image.open(out / by_source["scan2.jpg"]["image"]) as im:
        assert im.size == (100, 200) and im.format == "PNG"
        darkest, lightest = im.convert("L").getextrema()
        assert darkest < 80 and lightest > 210  # more contrast: the tones moved apart


def test_images_without_preprocessing_are_stored_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), (10, 120, 200)).save(src, quality=80)
    out = tmp_path / "pages"
    ingest([src], out)
    assert (out / _rows(out)[0]["image"]).read_bytes() == src.read_bytes()


def test_adding_documents_keeps_the_pages_there(invoices: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pdfs = sorted((invoices / "pdfs").glob("*.pdf"))
    for pdf in pdfs[:2]:
        shutil.copy(pdf, src)
    out = tmp_path / "pages"
    ingest([src], out, dpi=30, workers=1)
    before = (out / "data.jsonl").read_text(encoding="utf-8")
    again = ingest([src], out, dpi=30, workers=1)
    assert again.pages == 0 and again.already == 2
    for pdf in pdfs[2:]:
        shutil.copy(pdf, src)
    shutil.copy(pdfs[0], src / "same-bytes-other-name.pdf")
    more = ingest([src], out, dpi=30, workers=1)
    assert more.documents == 2 and more.already == 3  # identical bytes: the same document
    after = (out / "data.jsonl").read_text(encoding="utf-8")
    assert after.startswith(before) and len(after.splitlines()) == 6


def test_label_problems(invoices: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    shutil.copytree(invoices / "labels", labels)
    first = sorted(labels.glob("*.json"))[0]
    targets = json.loads(first.read_text(encoding="utf-8"))
    (labels / first.name).write_text(json.dumps(targets + [None]), encoding="utf-8")  # one too many
    second = sorted(labels.glob("*.json"))[1]
    bad = json.loads(second.read_text(encoding="utf-8"))
    bad[0]["date"] = "yesterday"
    second.write_text(json.dumps(bad), encoding="utf-8")
    report = ingest(
        [invoices / "pdfs"], tmp_path / "pages", labels_dir=labels, schema=invoices / "schema.json", dpi=30
    )
    assert (
        report.problems[0]
        == f"{first}: expected a list of {len(targets)} page targets (object or null), one per page"
    )
    assert report.problems[1].startswith(
        f"{second}: page 1: target does not match the schema (date: 'yesterday'"
    )
    assert report.documents == 3 and report.labelled == report.pages - 1


def test_missing_source_and_bad_flags(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nope"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main([str(tmp_path), "--output-dir", str(tmp_path / "o"), "--max-side", "3"]) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_and_single_process_render_the_same(invoices: Path, tmp_path: Path, workers: int) -> None:
    out = tmp_path / f"w{workers}"
    ingest([invoices / "pdfs" / "invoice-0001.pdf"], out, dpi=40, workers=workers)
    reference = tmp_path / "ref"
    ingest([invoices / "pdfs" / "invoice-0001.pdf"], reference, dpi=40, workers=1)
    assert [(out / r["image"]).read_bytes() for r in _rows(out)] == [
        (reference / r["image"]).read_bytes() for r in _rows(reference)
    ]
