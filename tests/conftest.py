"""Shared fixtures (session-scoped: built once per test run)."""

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The tiny Llama 3.2 Vision HF checkpoint (``make_tiny_checkpoint``), built once."""
    from torchtune_ext.models import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "base", seed=0)
