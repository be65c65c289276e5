"""The driver ``benchmarks/seg.py`` and ``benchmarks/cls.py`` share, one concern per module:

  conditions  what a condition name means (``real``, ``ordinary``, ``copy-paste 100%``, ``bus 25% + ordinary``, ...)
  splits      the BUSI train / validation / internal test parts and STU
  banks       the generator's record and the synthetic bank, generated once
  copypaste   the classical paired baseline: a real lesion pasted into another real image
  runs        one training run (with per-epoch validation and best-checkpoint selection) and the resumable matrix
  stats       mean ± std, paired differences, the paired bootstrap CI and the verdict rule
  report      the tables, figures and the results JSON
  driver      Task, profiles, command line and ``main``
"""
