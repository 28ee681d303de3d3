"""Interpretability analyses (reference-semantics §7) and the HTML report: see analyze.py."""
