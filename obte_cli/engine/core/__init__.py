"""Plumbing with no biology in it: user-facing errors, JSON files, bundled resources, devices and
autocast, plots, metrics and TSV tables.
"""
