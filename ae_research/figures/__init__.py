"""Figures as PNG files (matplotlib, Agg backend); the trainer logs them to W&B too."""
import matplotlib

matplotlib.use("Agg")
