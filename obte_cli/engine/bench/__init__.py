"""Benchmarks that compare obte with other implementations or baselines: training and embedding
throughput, prep speed, ProNAB ΔG, and the timing helpers they share.
"""
