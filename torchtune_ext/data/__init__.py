"""Data tools: the synthetic W-2 generator and the seed-compatible prepare step; synthetic data
and public-dataset importers for the classification, detection and DocVQA tasks.

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
    "ScanNoise": "scan",
    "W2Sample": "w2_values",
    "sample_w2": "w2_values",
    "render_w2": "w2_render",
    "make_w2": "synth_w2",
    "build_w2_dataset": "synth_w2",
    "write_w2_dataset": "synth_w2",
    "prepare_w2": "prepare_w2",
    "PrepareError": "prepare_w2",
    "generate_classify": "synthetic_classify",
    "generate_detect": "synthetic_detect",
    "generate_docvqa": "synthetic_docvqa",
    "import_docvqa": "import_public",
    "import_openfoodfacts": "import_public",
    "import_stanford_cars": "import_public",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
