"""The one fine-tuning trainer (tasks supply outputs, loss and predictions), cross-validation
folds grouped by protein, and the labelled sequence and per-residue tasks.
"""
