"""Notebook plumbing shared by release, tests and demo: extract the graded module, execute in a real kernel."""
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MODULE_TAG = "module"


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def module_source(nb, docstring: str) -> str:
    """The graded .py of a notebook: its code cells tagged "module", in order, under `docstring`."""
    cells = [c.source for c in nb.cells if c.cell_type == "code" and MODULE_TAG in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f'no code cell is tagged "{MODULE_TAG}"')
    return f'"""{docstring}"""\n' + "\n\n\n".join(cells) + "\n"


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def execute(nb, cwd, env=None, timeout=900, on_cell_executed=None) -> nbformat.NotebookNode:
    """Run `nb` top to bottom in a fresh python3 kernel working in `cwd`, with `env` added to the environment.
    Raises nbclient's CellExecutionError at the first failing cell; the executed notebook is returned."""
    Path(cwd).mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=on_cell_executed,
    )
    client.execute(env={**os.environ, **(env or {})})
    return nb
