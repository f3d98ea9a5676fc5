"""The encoder and what it is made of or saved as: packing, μP, task heads, model directories, and
the converter of the released OmniBioTE checkpoints.
"""
