"""Layer 2, engine: the vmapped, scanned ensemble program, its device placement and checkpoints.

Depends only on :mod:`gdchaos.core`.
"""
