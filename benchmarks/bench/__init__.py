"""The BUSI/STU driver ``benchmarks/seg.py`` and ``benchmarks/cls.py`` share (``driver``: command line,
profiles' plan, the BUSI split and STU, the generator's fairness check, the results files).

The engine it drives lives in the package, ``synthaug.evaluation`` (conditions, splits, banks, copy-paste,
runs, stats, report, figures, tasks), the same one ``synthaug trial`` runs on a user's own folder.
"""
