"""Execute notebooks at full size, in place, and stamp the hash of their code cells.

    python notebooks/execute.py speech image_rows signatures   # from the repository root

Each notebook runs in a scratch folder (``CPC_NOTEBOOK_WORK``, default a temporary
folder) with the repository importable, and is written back with its outputs and
``metadata["cpc"] = {"source_sha256": ..., "quick": false, "seconds": ...}``.
``tests/test_notebooks.py`` recomputes the hash from the committed code cells and fails
when a code cell changed after the outputs were made (markdown edits do not count).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent


def source_hash(nb) -> str:
    """SHA-256 of the code cells' sources, in order (what the outputs depend on)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def execute(name: str, work: Path, timeout: int) -> float:
    """Run ``notebooks/<name>.ipynb`` at full size and write it back with its outputs."""
    import nbclient
    import nbformat

    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("CPC_NOTEBOOK_QUICK", None)
    os.environ["CPC_NOTEBOOK_WORK"] = str(work)
    os.environ["CPC_REPO"] = str(REPO)
    os.environ.setdefault("CPC_NOTEBOOK_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["MPLBACKEND"] = "Agg"
    started = time.monotonic()
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    seconds = time.monotonic() - started
    nb.metadata["cpc"] = {
        "source_sha256": source_hash(nb),
        "quick": False,
        "seconds": round(seconds),
        "threads": int(os.environ["CPC_NOTEBOOK_THREADS"]),
    }
    nbformat.write(nb, path)
    return seconds


def main() -> None:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", help="notebook names without .ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    work = Path(os.environ.get("CPC_NOTEBOOK_WORK") or tempfile.mkdtemp(prefix="cpc_nb_"))
    for name in args.names:
        print(f"{name}: {execute(name, work, args.timeout):.0f} s")


if __name__ == "__main__":
    main()
