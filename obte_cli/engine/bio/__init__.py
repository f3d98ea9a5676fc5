"""Biological files and alphabets, without torch: molecule types, FASTA / GenBank / structure / motif
readers, complex inputs and protein homology.
"""
