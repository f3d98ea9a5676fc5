"""Plumbing with no biology in it: user-facing errors, JSON files, bundled resources, devices and
autocast, plots, metrics, TSV tables and the field checks of JSON schemas.
"""
