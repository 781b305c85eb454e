"""PDF pages to images with PDFium (pypdfium2, a wheel: no system packages), in a process pool.

PDFium is not thread-safe, so pages are rendered in worker processes (``spawn``ed: no state is
inherited from the caller), a chunk of pages of one document per job. The optional
preprocessing (:class:`Preprocess`) is applied to rendered pages and, by ``ingest``, to images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional

__all__ = ["PdfError", "Preprocess", "RenderJob", "count_pages", "render_jobs", "render_pages"]

#: Pages of one document rendered by one job.
PAGES_PER_JOB = 4


class PdfError(ValueError):
    """A PDF cannot be opened or a page cannot be rendered; the message names the file (and page)."""


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing before a page is stored.

    Attributes:
        max_side (Optional[int]): longest side in pixels; larger images are shrunk (never grown).
        contrast (float): contrast factor (``PIL.ImageEnhance.Contrast``; 1.0 leaves it).
    """

    max_side: Optional[int] = None
    contrast: float = 1.0

    @property
    def changes_images(self) -> bool:
        """bool: whether this preprocessing changes an image at all."""
        return self.max_side is not None or self.contrast != 1.0

    def apply(self, image: Any) -> Any:
        """Shrink and adjust one image.

        Args:
            image (PIL.Image.Image): the image.

        Returns:
            PIL.Image.Image: the result (RGB).
        """
        from PIL import Image, ImageEnhance

        image = image.convert("RGB")
        if self.max_side is not None and max(image.size) > self.max_side:
            scale = self.max_side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        if self.contrast != 1.0:
            image = ImageEnhance.Contrast(image).enhance(self.contrast)
        return image


@dataclass(frozen=True)
class RenderJob:
    """Pages of one PDF to render.

    Attributes:
        pdf (Path): the PDF.
        pages (tuple[int, ...]): 1-based page numbers.
        outputs (tuple[Path, ...]): one PNG path per page.
        dpi (float): rendering resolution.
        preprocess (Preprocess): applied after rendering.
    """

    pdf: Path
    pages: tuple[int, ...]
    outputs: tuple[Path, ...]
    dpi: float
    preprocess: Preprocess


def count_pages(pdf: Path) -> int:
    """Open a PDF and count its pages (in this process; no rendering).

    Args:
        pdf (Path): the file.

    Returns:
        int: the number of pages.

    Raises:
        PdfError: if PDFium cannot open it (not a PDF, damaged, password-protected) or it has no page.
    """
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(pdf))
    except pdfium.PdfiumError as exc:
        what = "a password-protected PDF" if "password" in str(exc).lower() else "not a readable PDF"
        raise PdfError(f"{pdf}: {what} ({exc})") from exc
    try:
        n = len(doc)
    finally:
        doc.close()
    if n == 0:
        raise PdfError(f"{pdf}: the PDF has no pages")
    return n


def _render(job: RenderJob) -> list[tuple[int, int, int]]:
    """Render a job's pages to PNG files; returns ``(page, width, height)`` per page."""
    import pypdfium2 as pdfium

    done = []
    try:
        doc = pdfium.PdfDocument(str(job.pdf))
    except pdfium.PdfiumError as exc:
        raise PdfError(f"{job.pdf}: not a readable PDF ({exc})") from exc
    try:
        for page_no, out in zip(job.pages, job.outputs, strict=True):
            try:
                page = doc[page_no - 1]
                scale = job.dpi / 72
                if job.preprocess.max_side is not None:  # render small directly instead of shrinking later
                    width, height = page.get_size()
                    scale = min(scale, job.preprocess.max_side / max(width, height))
                image = page.render(scale=scale).to_pil()
                page.close()
            except pdfium.PdfiumError as exc:
                raise PdfError(f"{job.pdf}: page {page_no} cannot be rendered ({exc})") from exc
            image = job.preprocess.apply(image)
            out.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            out.write_bytes(buf.getvalue())
            done.append((page_no, image.width, image.height))
    finally:
        doc.close()
    return done


def render_jobs(
    pdf: Path, n_pages: int, outputs: Sequence[Path], dpi: float, preprocess: Preprocess
) -> list[RenderJob]:
    """Cut one document into jobs of :data:`PAGES_PER_JOB` pages.

    Args:
        pdf (Path): the PDF.
        n_pages (int): its page count.
        outputs (Sequence[Path]): one PNG path per page.
        dpi (float): rendering resolution.
        preprocess (Preprocess): applied after rendering.

    Returns:
        list[RenderJob]: the jobs, in page order.
    """
    return [
        RenderJob(
            pdf,
            tuple(range(start + 1, min(start + PAGES_PER_JOB, n_pages) + 1)),
            tuple(outputs[start : start + PAGES_PER_JOB]),
            dpi,
            preprocess,
        )
        for start in range(0, n_pages, PAGES_PER_JOB)
    ]


def render_pages(jobs: Sequence[RenderJob], workers: int) -> Iterator[tuple[RenderJob, Optional[PdfError]]]:
    """Run render jobs in a process pool (or in this process when ``workers <= 1``).

    Args:
        jobs (Sequence[RenderJob]): the jobs.
        workers (int): worker processes.

    Yields:
        tuple[RenderJob, Optional[PdfError]]: each job, in submission order, with its error if it
        failed (the other jobs go on).
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            try:
                _render(job)
                yield job, None
            except PdfError as exc:
                yield job, exc
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        futures: list[Future[list[tuple[int, int, int]]]] = [pool.submit(_render, job) for job in jobs]
        for job, future in zip(jobs, futures, strict=True):
            try:
                future.result()
                yield job, None
            except PdfError as exc:
                yield job, exc
