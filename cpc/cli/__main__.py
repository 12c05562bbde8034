"""``python -m cpc.cli`` (what ``torchrun -m cpc.cli pretrain ...`` runs)."""

from cpc.cli import main

raise SystemExit(main())
