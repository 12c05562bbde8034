"""The notebooks run end to end in QUICK mode (toy sizes), in a scratch directory."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (dev extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (dev extra)")

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["speech", "image_rows", "signatures"]


def test_notebooks_are_stored_without_outputs():
    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: outputs stored"


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
