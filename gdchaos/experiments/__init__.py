"""Layer 5, experiments: configured tasks, the analysis and optimizer registries, results Datasets.

An analysis plug-in (:class:`gdchaos.experiments.registry.Analysis`) says how it runs on a
task and an η grid, what enters the summary table and which figures it draws; the sweep app
runs whichever is selected with ``analysis=NAME``.
"""
