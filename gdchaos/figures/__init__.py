"""Layer 4, figures: every figure gdchaos draws, from Datasets and analysis results.

Figures are pyplot-free Agg figures when written to files; pyplot loads only when a
figure is shown interactively. Depends on the layers below.
"""
