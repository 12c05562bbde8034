"""Experiments that train and then evaluate: Table 1 (speech), the task suite and the
signature benchmark.

They sit above both :mod:`cpc.train` and :mod:`cpc.eval`, the only code that uses both.
"""
