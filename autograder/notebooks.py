"""Notebook plumbing shared by release, tests and demo: extract the graded module, set a notebook's settings,
execute in a real kernel."""
import ast
import copy
import os
import re
from pathlib import Path, PurePath

import nbformat
from nbclient import NotebookClient

MODULE_TAG = "module"
SETTINGS_TAG = "settings"


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def tagged(nb, tag) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def module_source(nb, docstring: str) -> str:
    """The graded .py of a notebook: its code cells tagged "module", in order, under `docstring`. When those cells
    define sanity checks (functions named check_*), an `if __name__ == "__main__":` block at the end runs them, so
    `python file.py` checks what the notebook checks (the autograder's loader blanks that block: it never runs
    when grading)."""
    cells = [c.source for c in tagged(nb, MODULE_TAG)]
    if not cells:
        raise ValueError(f'no code cell is tagged "{MODULE_TAG}"')
    checks = [name for source in cells for name in re.findall(r"^def (check_\w+)\(\):", source, re.M)]
    main = ""
    if checks:
        main = ('\n\nif __name__ == "__main__":  # run as a script, this file runs the notebook\'s sanity checks\n'
                + "".join(f"    {name}()\n" for name in checks))
    return f'"""{docstring}"""\n' + "\n\n\n".join(cells) + "\n" + main


def with_settings(nb, settings: dict) -> nbformat.NotebookNode:
    """A copy of `nb` whose settings cell (the code cell tagged "settings") assigns `settings` instead of its own
    values: how the tests and `make reference-run` shrink a run without a line about them in the notebook.

    Each name must be one that the cell assigns at top level (`EPOCHS = 10 if FULL_RUN else 2` becomes
    `EPOCHS = 1`); values are Python literals (a path is written as its string). Raises ValueError otherwise."""
    nb = copy.deepcopy(nb)
    cells = tagged(nb, SETTINGS_TAG)
    if len(cells) != 1:
        raise ValueError(f'expected one code cell tagged "{SETTINGS_TAG}", found {len(cells)}')
    cell = cells[0]
    lines = cell.source.splitlines()
    assigned = {}
    for stmt in ast.parse(cell.source).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            assigned[stmt.targets[0].id] = stmt
    unknown = sorted(set(settings) - set(assigned))
    if unknown:
        raise ValueError(f"the settings cell assigns no {unknown}; it has {sorted(assigned)}")
    for name in sorted(settings, key=lambda n: -assigned[n].lineno):  # bottom up: line numbers stay valid
        value = str(settings[name]) if isinstance(settings[name], PurePath) else settings[name]
        text = repr(value)
        if ast.literal_eval(text) != value:
            raise ValueError(f"setting {name}: {value!r} is not a Python literal")
        stmt = assigned[name]
        lines[stmt.lineno - 1:stmt.end_lineno] = [f"{name} = {text}"]
    cell.source = "\n".join(lines)
    return nb


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
