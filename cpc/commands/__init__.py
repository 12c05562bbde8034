"""Sub-commands of ``cpc`` that live in their own modules (``register(sub)`` each)."""
