"""Protein–nucleic-acid ΔG: complexes, ProNAB data, the fold ensemble, cross-validation and its
report, the composition baseline, and JASPAR specificity scans.
"""
