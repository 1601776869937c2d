"""Autoencoder variants as Flax NNX modules behind one interface (`base.Autoencoder`)."""
from ae_research.models.base import Autoencoder
from ae_research.models.conv import ConvAutoencoder
from ae_research.models.mlp import MLPAutoencoder
from ae_research.models.stacked import StackedAutoencoder
from ae_research.models.vae import VAE

__all__ = ["Autoencoder", "ConvAutoencoder", "MLPAutoencoder", "StackedAutoencoder", "VAE"]
