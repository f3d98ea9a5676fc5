"""Sequences ↔ token ids, with the residue span of every token: the common interface, the
per-residue and sentencepiece (BPE) tokenizers, and loading them from disk.
"""
