"""Per-residue protein–nucleic-acid contacts, one job per module: labelled sites and their encoding (``sites``),
the fine-tuned head (``head``), the attention probe (``probe``), the predictor that wraps either (``predictor``),
cross-validation (``cv``), training as `obte finetune contacts` runs it (``training``), prediction on new inputs
as `obte contacts predict` runs it (``prediction``) and structure I/O (``io``).
"""
