"""Embeddings of FASTA records (packed, streamed, windowed), their output files, and the
gene↔protein joint-representation probe.
"""
