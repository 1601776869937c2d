"""Autoencoder variants as Flax NNX modules behind one interface (`base.Autoencoder`)."""
from ae_research.models import capabilities
from ae_research.models.base import Autoencoder, Model
from ae_research.models.classifier import Classifier
from ae_research.models.conv import ConvAutoencoder
from ae_research.models.mlp import MLPAutoencoder
from ae_research.models.stacked import StackedAutoencoder
from ae_research.models.vae import VAE

__all__ = ["capabilities", "Autoencoder", "Classifier", "Model", "ConvAutoencoder", "MLPAutoencoder", "StackedAutoencoder", "VAE"]
