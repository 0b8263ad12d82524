"""The readable per-patient definition of every metric: the test oracle. PURE.

One patient's time-sorted arrays in, plain numpy and Python out, written to be read against the
papers: ``series`` (cleaning), ``interpolation_grid`` (the grid), ``consensus``, ``episodes``,
``risk``, ``variability``, ``mage``, ``agp``, ``sufficiency``, and ``patient_metrics``, which
computes the groups of ``metrics.spec`` for one patient. The compiled kernels
(``metrics.kernels``) compute the same numbers for whole cohorts and are held equal to these by
tests/test_metrics_cohort.py. Production code takes metric names from ``metrics.spec``; it may
use the constants defined here (the kernels compile them in) and a pure helper such as
``risk.personal_glycemic_states``, never this package to learn what the metrics are.
"""
