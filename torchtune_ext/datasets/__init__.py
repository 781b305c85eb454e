"""Dataset builders for torchtune configs (``_component_: torchtune_ext.datasets.<builder>``)."""

from torchtune_ext.datasets._w2 import W2DataError, W2Dataset, W2ToMessages, parse_ground_truth, w2_dataset

__all__ = ["W2DataError", "W2Dataset", "W2ToMessages", "parse_ground_truth", "w2_dataset"]
