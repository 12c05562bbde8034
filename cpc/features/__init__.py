"""Using a trained model as a feature extractor.

- :mod:`~cpc.features.extract`: features of whole files (chunked or streamed) into a
  feature folder;
- :mod:`~cpc.features.streaming`: input arriving in pieces, the offline features out;
- :mod:`~cpc.features.folder`: the feature-folder format (``index.csv`` + ``.npy``),
  its one writer and its one reader;
- :mod:`~cpc.features.units`: discrete units (k-means over frames).
"""
