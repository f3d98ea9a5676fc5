"""Masked-LM pretraining from raw files to checkpoints: corpus prep, tokenizer training, token
files, batches, the training loop, its checkpoints and the process group.
"""
