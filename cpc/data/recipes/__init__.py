"""One recipe per modality (see :mod:`cpc.data.recipe` and :mod:`cpc.data.registry`)."""
