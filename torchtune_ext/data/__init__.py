"""Data tools (no torch): make, import and prepare the datasets the tasks read.

* :mod:`torchtune_ext.data.synth`: synthetic data per task (``python -m torchtune_ext.data.synth TASK``);
* :mod:`torchtune_ext.data.prepare_w2`: the reference recipe's W-2 prepare step;
* :mod:`torchtune_ext.data.import_public`: local copies of public datasets into the task layouts.

The torchtune dataset builders that read these layouts are in :mod:`torchtune_ext.datasets`.
Names are resolved lazily so that ``python -m torchtune_ext.data.<tool>`` does not import
the tool twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ScanNoise",
    "W2Sample",
    "build_w2_dataset",
    "make_w2",
    "prepare_w2",
    "render_w2",
    "sample_w2",
    "write_w2_dataset",
    "PrepareError",
    "generate_classify",
    "generate_detect",
    "generate_docvqa",
    "import_docvqa",
    "import_openfoodfacts",
    "import_stanford_cars",
]

_WHERE = {
    "ScanNoise": "synth.scan",
    "W2Sample": "synth.w2_values",
    "sample_w2": "synth.w2_values",
    "render_w2": "synth.w2_layout",
    "make_w2": "synth.w2",
    "build_w2_dataset": "synth.w2",
    "write_w2_dataset": "synth.w2",
    "prepare_w2": "prepare_w2",
    "PrepareError": "prepare_w2",
    "generate_classify": "synth.classify",
    "generate_detect": "synth.detect",
    "generate_docvqa": "synth.docvqa",
    "import_docvqa": "import_public",
    "import_openfoodfacts": "import_public",
    "import_stanford_cars": "import_public",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
