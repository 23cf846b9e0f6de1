"""Every notebooks/0*.ipynb runs top to bottom in a real Jupyter kernel at smoke size.

03_igsm_probing.ipynb is executed by the iGSM tests. Notebooks are committed without outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
TESTED_ELSEWHERE = {"03_igsm_probing.ipynb"}
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("0*.ipynb") if p.name not in TESTED_ELSEWHERE)
CELL_TIMEOUT_S = 600


def test_the_cfg_notebooks_are_present():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_cfg_probing.ipynb", "02_attention_vs_parse.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean_and_starts_with_parameters(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and code[0].source.lstrip().startswith("# Parameters"), "the first code cell holds the parameters"
    assert "PHYSLM_NOTEBOOK_SMOKE" in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_at_smoke_size(path, monkeypatch):
    monkeypatch.setenv("PHYSLM_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
        allow_errors=False,
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs), "no figure was produced"
