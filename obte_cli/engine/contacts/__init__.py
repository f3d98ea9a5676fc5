"""Per-residue protein–nucleic-acid contacts: labelled sites, the fine-tuned head, the attention
probe, the predictor that wraps either, cross-validation and structure I/O.
"""
