"""notebooks/03_igsm_probing.ipynb runs top to bottom at smoke size in a real kernel."""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_igsm_probing.ipynb"


def test_notebook_executes_at_smoke_size(monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PHYSLM_NOTEBOOK_SMOKE", "1")
    monkeypatch.delenv("PHYSLM_IGSM_RUN", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "the nece probe agrees with the truth" in text and "the dep probe agrees" in text
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) >= 2  # the dependency graph and the dep matrix
