"""Loss terms (small pure functions of `LossInputs`) and the weighted `Objective`."""
from ae_research.losses.base import LossInputs, Objective
from ae_research.losses.reconstruction import BinaryCrossEntropy, SquaredError

__all__ = ["LossInputs", "Objective", "BinaryCrossEntropy", "SquaredError"]
