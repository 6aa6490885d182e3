"""notebooks/analysis.ipynb runs top to bottom on synthetic run directories.

The kernel is this interpreter (a kernelspec written to a temporary JUPYTER_PATH), so the test
needs no kernel installed in the user's Jupyter folders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
KERNEL = "saw-test-python"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "test python", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    return KERNEL


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "RUN_GLOB" in code[0].source


def test_notebook_runs_on_synthetic_runs(synthetic_runs, kernel_env, monkeypatch):
    monkeypatch.setenv("SAW_RUN_GLOB", str(synthetic_runs / "*" / "*"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel_env, timeout=300,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # reward curves for 2 tasks + SAW diagnostics for 2 tasks
    assert len(images) == 4
    text = "\n".join(o.get("text", "") for o in outputs)
    assert "7 runs from" in text
    markdown = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "35.00 ± 7.07" in markdown and "Table 2: summarisation" in markdown
