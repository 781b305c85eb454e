"""Small synthetic datasets for the task configs (classification, detection, DocVQA), built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def task_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Task name -> a ``data_dir`` as the tiny task configs expect (``train/``, ``labels.txt``)."""
    from torchtune_ext.data.synth.classify import generate_classify
    from torchtune_ext.data.synth.detect import generate_detect
    from torchtune_ext.data.synth.docvqa import generate_docvqa

    root = tmp_path_factory.mktemp("task_data")
    return {
        "classify": generate_classify(root / "classify", train=4, test=0, num_labels=2),
        "detect": generate_detect(root / "detect", train=4, test=0),
        "docvqa": generate_docvqa(root / "docvqa", train=2, test=0),
    }
