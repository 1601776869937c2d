"""Loss terms (small pure functions of `LossInputs`) and the weighted `Objective`."""
from ae_research.losses.base import LossInputs, Objective
from ae_research.losses.classification import Accuracy, CrossEntropy
from ae_research.losses.reconstruction import BinaryCrossEntropy, SquaredError
from ae_research.losses.regularizers import Contractive, GaussianKL, KLSparsity, L1Code, WeightDecay

__all__ = ["LossInputs", "Objective", "Accuracy", "CrossEntropy", "BinaryCrossEntropy", "SquaredError", "Contractive", "GaussianKL",
           "KLSparsity", "L1Code", "WeightDecay"]
