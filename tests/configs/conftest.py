"""Small synthetic datasets for the task configs (classification, detection, DocVQA, extraction), built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def task_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Task name -> a ``data_dir`` as the tiny task configs expect (``train/``, ``labels.txt``)."""
    from torchtune_ext.data.documents.ingest import ingest
    from torchtune_ext.data.documents.split import split_documents
    from torchtune_ext.data.synth.classify import generate_classify
    from torchtune_ext.data.synth.detect import generate_detect
    from torchtune_ext.data.synth.docvqa import generate_docvqa
    from torchtune_ext.data.synth.extract import generate_extract

    root = tmp_path_factory.mktemp("task_data")
    invoices = generate_extract(root / "invoices", documents=2, seed=0)
    ingest([invoices / "pdfs"], root / "pages", labels_dir=invoices / "labels", dpi=60, workers=1)
    split_documents(root / "pages", invoices / "schema.json", root / "extract", test=0.0)
    return {
        "classify": generate_classify(root / "classify", train=4, test=0, num_labels=2),
        "detect": generate_detect(root / "detect", train=4, test=0),
        "docvqa": generate_docvqa(root / "docvqa", train=2, test=0),
        "extract": root / "extract",
    }
