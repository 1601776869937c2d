"""Hydra loads launchers only from classes defined in the `hydra_plugins` namespace;
`ae-train` puts this folder's parent on sys.path (see ae_research/train.py)."""
from ae_research.population import launcher


class PopulationLauncher(launcher.PopulationLauncher):
  """See ae_research/population/launcher.py."""
