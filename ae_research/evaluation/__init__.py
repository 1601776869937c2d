"""Evaluation: compiled per-example metrics, scikit-learn probes, figures, eval.json."""
