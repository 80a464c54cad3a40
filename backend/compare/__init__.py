"""Comparison of a candidate run against a reference and the layer-by-layer diagnosis."""
