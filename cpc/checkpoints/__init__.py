"""Everything that reads or writes a model to disk: checkpoints (save, load, the checks of
untrusted files), Hub folders, CPC_audio imports and ONNX export.

- :mod:`~cpc.checkpoints.store`: training checkpoints, written atomically, pruned, resumed;
- :mod:`~cpc.checkpoints.loading`: ``cpc.load`` (JSON and safetensors only, verified);
- :mod:`~cpc.checkpoints.safe_load`: safetensors headers checked before any allocation;
- :mod:`~cpc.checkpoints.lock`: one writer per output folder;
- :mod:`~cpc.checkpoints.hub`: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``;
- :mod:`~cpc.checkpoints.convert`: CPC_audio checkpoints into this package's format;
- :mod:`~cpc.checkpoints.pretrained`: published CPC_audio models by name (fetched, verified,
  converted once);
- :mod:`~cpc.checkpoints.export`: ONNX export of the feature extractor.
"""
