"""Data sets that are generated locally and need no download.

- :mod:`cpc.data.corpora.espeak`: multi-speaker synthetic speech with frame-level phone
  labels, synthesised by eSpeak NG (``build_espeak_corpus``, ``load_phone_labels``).
- :mod:`cpc.data.corpora.texts`: the seeded sentence grammars it speaks.
- :mod:`cpc.data.corpora.pen`: synthetic pen trajectories (sigma-lognormal model) with
  writer identity and optional skilled forgeries (``generate_pen_samples``,
  ``generate_pen_corpus``): the ``easy`` setting of ``cpc data pen``.
- :mod:`cpc.data.corpora.pen_sessions`: the ``hard`` setting (sessions, complex
  signatures, forgers with their own timing), the signature benchmark's data.

``cpc data espeak|pen`` builds them. The submodules are not imported here, so importing
the pen generator does not load the speech stack.
"""
