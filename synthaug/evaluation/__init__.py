"""One engine for our benchmarks and for ``synthaug trial``: does adding synthetic pairs help a model?

  conditions  what a condition name means (``real``, ``ordinary``, ``copy-paste 100%``, ``bus 25%``, ...)
  splits      stratified carving, capped subsets, nested real fractions, class shares
  holdout     the test / validation / train parts of a user's raw folder (``synthaug trial``)
  banks       the generator's record and the synthetic bank, generated once
  copypaste   the classical paired baseline: a real lesion pasted into another real image
  runs        one training run (per-epoch validation, best-validation checkpoint) and the resumable matrix
  stats       mean ± std, paired differences, the paired bootstrap CI and the verdict rule
  report      summary, validation picks, paired comparisons and the benchmark's tables
  figures     ratio curve, validation curves, per-condition scores
  tasks       segmentation (smp) and classification (timm): build, train, score
  budget      fitting a trial into ``--minutes``: measured step cost, epochs and seeds
  trial       ``synthaug trial``: plan, runs under one progress bar, verdicts and the recommendation

It sits above the data, mix and the integrations' training loops and below the command line; the
benchmarks (``benchmarks/seg.py``, ``benchmarks/cls.py``) are thin BUSI/STU drivers over it.
"""
