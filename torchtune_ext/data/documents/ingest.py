"""``python -m torchtune_ext.data.documents.ingest SOURCE... --output-dir PAGES``: documents to pages.

Reads, from files or folders (searched recursively, in name order):

* **PDFs** (``*.pdf``): every page rendered to PNG with PDFium, in a process pool
  (``--workers``), at ``--dpi``. A same-stem ``.json`` beside the PDF (or in ``--labels``)
  holding a list with one target per page (an object, or null for an unlabelled page) labels it.
* **Images** (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, ``.bmp``, ``.gif``): one page each; a
  same-stem ``.json`` object beside it (or in ``--labels``) is its target. Stored byte for byte
  unless preprocessing is asked for.
* **JSONL** (``*.jsonl``): rows ``{"image", ["target"], ["doc_id"], ["page"], ["id"]}``, images
  relative to the file.
* **ShareGPT / LLaMA-Factory JSON** (any other ``*.json`` except ``dataset_info.json``): see
  :mod:`torchtune_ext.data.documents.sharegpt`.

Optional preprocessing: ``--max-side N`` (shrink so the longest side is at most N pixels; PDFs
are rendered at that size directly) and ``--contrast F`` (1.0 = unchanged). Every page keeps
``doc_id`` (SHA-256 of its source file; for rows without one, of the image) and ``page``.

The output is a pages directory (:mod:`torchtune_ext.data.documents.pages`). Ingest only adds:
run it again with more files and the pages already there (same ``doc_id`` and page) are kept
as they are, so the teacher's log and the review queue stay valid. A file that cannot be read
(a damaged or password-protected PDF, an image that does not decode, a bad row) is reported on
one line naming it and skipped; everything else is written. Exit status: 0, or 1 when something
was skipped, or 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eval.core.records import IMAGE_SUFFIXES, DatasetRowError, iter_jsonl
from eval.tasks.extract import ExtractSchema, load_schema
from torchtune_ext.data.documents.pages import (
    DATA_FILE,
    append_jsonl,
    file_sha256,
    page_id,
    read_rows,
)
from torchtune_ext.data.documents.render import (
    PdfError,
    Preprocess,
    RenderJob,
    count_pages,
    render_jobs,
    render_pages,
)
from torchtune_ext.data.documents.sharegpt import DATASET_INFO, read_sharegpt

__all__ = ["IngestReport", "ingest", "main"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class IngestReport:
    """What an ingest run did.

    Attributes:
        pages (int): pages added.
        documents (int): documents added.
        labelled (int): added pages that came with a target.
        already (int): documents or rows skipped because their pages were already there.
        problems (list[str]): one line per skipped file or row.
    """

    pages: int = 0
    documents: int = 0
    labelled: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Doc:
    """One document to add: its rows, ready or waiting for render jobs."""

    source: Path
    rows: list[dict[str, Any]]
    jobs: list[RenderJob] = field(default_factory=list)


def _files(sources: Sequence[Path], skip: Path) -> Iterator[Path]:
    for src in sources:
        if src.is_dir():
            for path in sorted(src.rglob("*")):
                hidden = any(part.startswith(".") for part in path.relative_to(src).parts)
                if path.is_file() and not hidden and skip not in path.resolve().parents:
                    yield path
        else:
            yield src


def _sidecar(path: Path, labels_dir: Optional[Path]) -> Optional[Path]:
    for candidate in (path.with_suffix(".json"), labels_dir / f"{path.stem}.json" if labels_dir else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetRowError(f"{path}: not valid JSON ({exc})") from exc


class _Ingest:
    """One run: the output directory's state, the options, and what was found."""

    def __init__(
        self,
        out: Path,
        labels_dir: Optional[Path],
        dpi: float,
        preprocess: Preprocess,
        schema: Optional[ExtractSchema],
    ) -> None:
        self.out = out
        self.labels_dir = labels_dir
        self.dpi = dpi
        self.preprocess = preprocess
        self.schema = schema
        self.report = IngestReport()
        self.keys: set[tuple[str, int]] = set()
        self.ids: set[str] = set()
        for where, row in read_rows(out / DATA_FILE):
            if not isinstance(row.get("doc_id"), str) or not isinstance(row.get("page"), int):
                raise DatasetRowError(f"{where}: a pages file row needs 'doc_id' and 'page'")
            self.keys.add((row["doc_id"], row["page"]))
            self.ids.add(str(row.get("id")))
        self.docs_there = {doc for doc, _ in self.keys}
        self.listed: set[Path] = set()  # images that rows of a JSONL or ShareGPT file name

    def _target(self, value: Any, where: str) -> Optional[dict[str, Any]]:
        """A source label: an object (checked against the schema, if given) or None."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise DatasetRowError(
                f"{where}: a target must be a JSON object or null, got {type(value).__name__}"
            )
        if self.schema is not None:
            errors = self.schema.errors(value, limit=1)
            if errors:
                self.report.problems.append(
                    f"{where}: target does not match the schema ({errors[0]}); page added without it"
                )
                return None
        return value

    def _row(
        self, doc_id: str, page: int, image: str, source: str, target: Any, rid: Optional[str] = None
    ) -> dict:
        row: dict[str, Any] = {
            "id": rid or page_id(doc_id, page),
            "image": image,
            "doc_id": doc_id,
            "page": page,
        }
        row["source"] = source
        if target is not None:
            row["target"] = target
        return row

    def pdf(self, path: Path) -> Optional[_Doc]:
        doc_id = file_sha256(path)
        if doc_id in self.docs_there:
            self.report.already += 1
            return None
        n = count_pages(path)
        targets: list[Any] = [None] * n
        label = _sidecar(path, self.labels_dir)
        if label is not None:
            value = _read_json(label)
            if not isinstance(value, list) or len(value) != n:
                raise DatasetRowError(
                    f"{label}: expected a list of {n} page targets (object or null), one per page"
                )
            targets = [self._target(t, f"{label}: page {k}") for k, t in enumerate(value, start=1)]
        ids = [page_id(doc_id, k) for k in range(1, n + 1)]
        outputs = [self.out / "images" / f"{pid}.png" for pid in ids]
        rows = [
            self._row(doc_id, k, f"images/{pid}.png", str(path), targets[k - 1])
            for k, pid in enumerate(ids, start=1)
        ]
        self.docs_there.add(doc_id)
        return _Doc(path, rows, render_jobs(path, n, outputs, self.dpi, self.preprocess))

    def _store_image(self, image: Path, name: str, where: str) -> str:
        """Copy (or preprocess) an image into images/; returns its path relative to the output."""
        from PIL import Image, UnidentifiedImageError

        data = image.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if self.preprocess.changes_images:
                    from PIL import ImageOps

                    buf = io.BytesIO()
                    self.preprocess.apply(ImageOps.exif_transpose(im)).save(buf, format="PNG")
                    data, suffix = buf.getvalue(), ".png"
                else:
                    suffix = image.suffix.lower()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetRowError(f"{where}: image {image} does not decode ({exc})") from exc
        rel = f"images/{_UNSAFE.sub('_', name)}{suffix}"
        dest = self.out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return rel

    def image(self, path: Path) -> Optional[_Doc]:
        doc_id = file_sha256(path)
        if (doc_id, 1) in self.keys:
            self.report.already += 1
            return None
        label = _sidecar(path, self.labels_dir)
        target = self._target(_read_json(label), str(label)) if label is not None else None
        rid = page_id(doc_id, 1)
        rel = self._store_image(path, rid, str(path))
        self.keys.add((doc_id, 1))
        return _Doc(path, [self._row(doc_id, 1, rel, str(path), target)])

    def _entry(
        self,
        where: str,
        image: Path,
        target: Any,
        doc_id: Any,
        page: Any,
        rid: Any,
        rows: list[dict[str, Any]],
    ) -> None:
        """Add one row of a JSONL or ShareGPT source (problems are recorded, not raised)."""
        self.listed.add(image.resolve())
        try:
            if not image.is_file():
                raise DatasetRowError(f"{where}: image not found: {image}")
            doc = doc_id if isinstance(doc_id, str) and doc_id else file_sha256(image)
            page_no = page if isinstance(page, int) and not isinstance(page, bool) else 1
            if page_no < 1:
                raise DatasetRowError(f"{where}: 'page' must be an integer >= 1")
            if (doc, page_no) in self.keys:
                self.report.already += 1
                return
            page_key = str(rid) if isinstance(rid, (str, int)) and str(rid) else page_id(doc, page_no)
            if page_key in self.ids:
                raise DatasetRowError(f"{where}: duplicate id {page_key!r}")
            target = self._target(target, where)
            rel = self._store_image(image, page_key, where)
        except DatasetRowError as exc:
            self.report.problems.append(str(exc))
            return
        self.keys.add((doc, page_no))
        self.ids.add(page_key)
        rows.append(self._row(doc, page_no, rel, where, target, page_key))

    def jsonl(self, path: Path) -> _Doc:
        rows: list[dict[str, Any]] = []
        for where, row in iter_jsonl(path):
            if not isinstance(row, dict) or not isinstance(row.get("image"), str):
                self.report.problems.append(f"{where}: expected an object with an 'image' path")
                continue
            image = (path.parent / row["image"]).resolve()
            self._entry(
                where, image, row.get("target"), row.get("doc_id"), row.get("page"), row.get("id"), rows
            )
        return _Doc(path, rows)

    def sharegpt(self, path: Path) -> _Doc:
        pages, bad = read_sharegpt(path)
        self.report.problems.extend(bad)
        rows: list[dict[str, Any]] = []
        for p in pages:
            self._entry(p.where, p.image, p.target, p.doc_id, p.page, p.id, rows)
        return _Doc(path, rows)

    def finish(self, doc: _Doc) -> None:
        """Append a finished document's rows to data.jsonl."""
        if not doc.rows:
            return
        append_jsonl(self.out / DATA_FILE, doc.rows)
        self.report.pages += len(doc.rows)
        self.report.documents += len({r["doc_id"] for r in doc.rows})
        self.report.labelled += sum("target" in r for r in doc.rows)


def ingest(
    sources: Sequence[str | Path],
    output_dir: str | Path,
    *,
    labels_dir: Optional[str | Path] = None,
    dpi: float = 150.0,
    preprocess: Optional[Preprocess] = None,
    workers: Optional[int] = None,
    schema: Optional[str | Path | ExtractSchema] = None,
) -> IngestReport:
    """Add the pages of documents, images and labelled rows to a pages directory.

    Args:
        sources (Sequence[str | Path]): files or folders (layouts in the module docstring).
        output_dir (str | Path): the pages directory (created; existing pages kept).
        labels_dir (Optional[str | Path]): a folder of same-stem ``.json`` labels.
        dpi (float): PDF rendering resolution.
        preprocess (Optional[Preprocess]): image preprocessing (default: none).
        workers (Optional[int]): render processes (default: the CPU count).
        schema (Optional[str | Path | ExtractSchema]): when given, source labels that do not
            validate are reported and their pages added without a target.

    Returns:
        IngestReport: counts and one line per skipped file or row.

    Raises:
        FileNotFoundError: if a source does not exist.
        DatasetRowError: if the existing ``data.jsonl`` is not a pages file.
    """
    paths = [Path(s).expanduser() for s in sources]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(schema, (str, Path)):
        schema = load_schema(schema)
    labels = Path(labels_dir).expanduser() if labels_dir else None
    run = _Ingest(out, labels, dpi, preprocess or Preprocess(), schema)
    files = list(_files(paths, out.resolve()))
    page_stems = {(p.parent, p.stem) for p in files if p.suffix.lower() in IMAGE_SUFFIXES | {".pdf"}}
    found: dict[Path, Optional[_Doc]] = {}
    # rows first: an image a JSONL or ShareGPT file lists is that row's page, not a page of its own
    for path in files:
        suffix = path.suffix.lower()
        is_sharegpt = (
            suffix == ".json" and path.name != DATASET_INFO and (path.parent, path.stem) not in page_stems
        )
        if is_sharegpt and run.labels_dir is not None and path.parent.resolve() == run.labels_dir.resolve():
            continue  # a label of a file found elsewhere
        try:
            if suffix == ".jsonl":
                found[path] = run.jsonl(path)
            elif is_sharegpt:
                found[path] = run.sharegpt(path)
        except (DatasetRowError, OSError) as exc:
            run.report.problems.append(str(exc))
    for path in files:
        suffix = path.suffix.lower()
        if path.resolve() in run.listed:
            continue
        try:
            if suffix == ".pdf":
                found[path] = run.pdf(path)
            elif suffix in IMAGE_SUFFIXES:
                found[path] = run.image(path)
        except (PdfError, DatasetRowError, OSError) as exc:
            run.report.problems.append(str(exc))
    docs = [doc for path in files if (doc := found.get(path)) is not None]
    jobs = [job for doc in docs for job in doc.jobs]
    results = render_pages(jobs, workers or os.cpu_count() or 1)
    for doc in docs:
        errors = [err for _, err in (next(results) for _ in doc.jobs) if err is not None]
        if errors:
            run.report.problems.append(str(errors[0]))
            for row in doc.rows:
                (out / row["image"]).unlink(missing_ok=True)
            continue
        run.finish(doc)
    return run.report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Ingest from the command line.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 ok, 1 when files or rows were skipped, 2 for bad arguments.
    """
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.documents.ingest",
        description="Add PDFs, images (with same-stem .json labels), JSONL and ShareGPT/LLaMA-Factory "
        "JSON to a pages directory, one row per page with doc_id and page.",
    )
    p.add_argument("sources", nargs="+", type=Path, help="files or folders (searched recursively)")
    p.add_argument("--output-dir", type=Path, required=True, help="the pages directory (created; pages kept)")
    p.add_argument("--labels", type=Path, default=None, help="folder of same-stem .json labels")
    p.add_argument("--schema", type=Path, default=None, help="check source labels against this JSON Schema")
    p.add_argument("--dpi", type=float, default=150.0, help="PDF rendering resolution (default: 150)")
    p.add_argument(
        "--max-side", type=int, default=None, help="shrink pages so the longest side is at most N px"
    )
    p.add_argument("--contrast", type=float, default=1.0, help="contrast factor (default: 1.0, unchanged)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default: CPU count)")
    args = p.parse_args(argv)
    if args.dpi <= 0 or args.contrast <= 0 or (args.max_side is not None and args.max_side < 16):
        print("error: --dpi and --contrast must be > 0 and --max-side >= 16", file=sys.stderr)
        return 2
    try:
        report = ingest(
            args.sources,
            args.output_dir,
            labels_dir=args.labels,
            dpi=args.dpi,
            preprocess=Preprocess(args.max_side, args.contrast),
            workers=args.workers,
            schema=args.schema,
        )
    except (FileNotFoundError, DatasetRowError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.problems:
        print(f"skipped: {line}", file=sys.stderr)
    print(
        f"added {report.pages} pages of {report.documents} documents ({report.labelled} labelled) to "
        f"{args.output_dir / DATA_FILE}; {report.already} already there, {len(report.problems)} skipped"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
