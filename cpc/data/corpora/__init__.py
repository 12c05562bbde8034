"""Data sets that are generated locally and need no download.

- :mod:`cpc.data.corpora.espeak`: multi-speaker synthetic speech with frame-level phone
  labels, synthesised by eSpeak NG (``build_espeak_corpus``, ``load_phone_labels``).
- :mod:`cpc.data.corpora.texts`: the seeded sentence grammars it speaks.
- :mod:`cpc.data.corpora.pen`: synthetic pen trajectories (sigma-lognormal model) with
  writer identity and optional skilled forgeries (``generate_pen_samples``,
  ``generate_pen_corpus``).

The submodules are not imported here, so ``python -m cpc.data.corpora.espeak`` runs
cleanly and importing the pen generator does not load the speech stack.
"""
