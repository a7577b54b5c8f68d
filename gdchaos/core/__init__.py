"""Layer 1, core: training maps, models, losses, data, perturbations, precision and tree utilities.

Depends on nothing else in gdchaos. Everything above builds on these pure pieces.
"""
