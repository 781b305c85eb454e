"""Synthetic invoices for the document tools' tests, generated once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def invoices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four invoices (six pages, some Arabic): ``pdfs/``, ``labels/``, ``schema.json``, ``rules.json``."""
    from torchtune_ext.data.synth.extract import generate_extract

    return generate_extract(tmp_path_factory.mktemp("invoices"), documents=4, seed=0)


@pytest.fixture(scope="session")
def labelled_pages(invoices: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The invoices ingested with their labels (read-only: copy before changing)."""
    from torchtune_ext.data.documents.ingest import ingest

    out = tmp_path_factory.mktemp("pages")
    report = ingest([invoices / "pdfs"], out, labels_dir=invoices / "labels", dpi=50, workers=2)
    assert report.problems == [] and report.pages == report.labelled == 6
    return out
