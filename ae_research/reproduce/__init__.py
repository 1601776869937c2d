"""Paper-figure reproductions: studies (runs + the claims they test), reports, `ae-reproduce`."""
from ae_research.reproduce.cli import main, reproduce
from ae_research.reproduce.studies import STUDIES

__all__ = ["STUDIES", "main", "reproduce"]
