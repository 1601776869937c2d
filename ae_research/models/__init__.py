"""Autoencoder variants as Flax NNX modules behind one interface (`base.Autoencoder`)."""
from ae_research.models.base import Autoencoder
from ae_research.models.mlp import MLPAutoencoder

__all__ = ["Autoencoder", "MLPAutoencoder"]
