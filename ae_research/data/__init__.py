"""Data sets held whole in memory (and on device): loaders return an `ArrayDataset`."""
from ae_research.data.dataset import ArrayDataset

__all__ = ["ArrayDataset"]
