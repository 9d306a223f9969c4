"""Measure every cell of the template side by side: ``python -m bench``."""
