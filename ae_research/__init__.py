"""ae-research: classic autoencoders in JAX/Flax NNX with Hydra configs and W&B logging."""
__version__ = "0.1.0"


def train_and_evaluate(cfg, workdir):
  """See `ae_research.training.train_and_evaluate` (imported lazily: it pulls in JAX)."""
  from ae_research.training import train_and_evaluate as _train  # pylint: disable=g-import-not-at-top
  return _train(cfg, workdir)
