"""Layer 6, command line: the Hydra plumbing the apps share (overrides, validation, run
directories, several processes). The apps themselves are the top-level modules
``gdchaos.sweep``, ``gdchaos.toymap``, ``gdchaos.phase``, ``gdchaos.intermittency``, ``gdchaos.minima``.
"""
