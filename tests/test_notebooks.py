"""The notebooks: stored outputs are fresh, and each runs end to end in QUICK mode."""

import importlib.util
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (dev extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (dev extra)")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["speech", "image_rows", "signatures"]


def _source_hash():
    spec = importlib.util.spec_from_file_location("nb_execute", REPO / "notebooks" / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.source_hash


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_outputs_come_from_the_committed_code(name):
    """Outputs are stored at full size, and no code cell changed since they were made.

    Re-execute with ``python notebooks/execute.py NAME`` after editing a code cell.
    """
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    stamp = nb.metadata.get("cpc", {})
    fix = f"run `python notebooks/execute.py {name}` and commit the notebook"
    assert stamp.get("source_sha256") == _source_hash()(nb), f"{name}: code changed; {fix}"
    assert stamp.get("quick") is False, f"{name}: outputs from QUICK mode; {fix}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: a cell never ran; {fix}"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name}: no figure in the stored outputs"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(name, tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel (install ipykernel)")
    # The kernel inherits this environment: QUICK sizes, one thread, the repo importable.
    monkeypatch.setenv("CPC_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("CPC_NOTEBOOK_WORK", str(tmp_path / "nb_work"))
    monkeypatch.setenv("CPC_REPO", str(REPO))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},  # cwd: nothing lands in the repo
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    assert list((tmp_path / "nb_work" / name / "figures").glob("*.png")), "no figure written"
