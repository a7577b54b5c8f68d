"""Layer 3, analyses: what is measured on training runs.

Lyapunov exponents (finite-ε and tangent), curvature and stability, training time, time
series, weights, directions, toy maps, the edge of chaos, intermittency, regularity of minima
and the learning-rate onset finder. Depends on :mod:`gdchaos.core` and :mod:`gdchaos.engine`.
"""
