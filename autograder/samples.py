"""Sample submissions for the demo and the tests: the reference, the untouched release, honest variants and
realistic bugs, each made from the reference by exact text replacements (each must match exactly once), as the
assignment's declaration lists them.

They are written by `make release` under solutions/<assignment>/samples/ (instructor side: they contain the
solution), as .py files, and as notebooks for those the declaration names.
"""
import nbformat

from .notebooks import read


def apply(text: str, replacements, name: str) -> str:
    for old, new in replacements:
        if text.count(old) != 1:
            raise ValueError(f"sample {name}: the text to replace occurs {text.count(old)} times, not once")
        text = text.replace(old, new)
    return text


def sample_files(assignment, reference_module: str, student_notebook: str, student_module: str) -> dict:
    """Every sample file, path -> text."""
    folder = assignment.samples_dir
    bugs = assignment.samples
    files = {folder / "reference.py": reference_module, folder / "release.py": student_module,
             folder / "release_notebook.ipynb": student_notebook}
    for name, (what, replacements) in bugs.items():
        files[folder / f"{name}.py"] = f"# Sample submission: {what}.\n" + apply(reference_module, replacements, name)
    for name in assignment.as_notebooks:
        files[folder / f"{name}_notebook.ipynb"] = nbformat.writes(as_notebook(assignment, name)) + "\n"
    return files


def as_notebook(assignment, name: str) -> nbformat.NotebookNode:
    """Sample `name` ("reference" or a bug the declaration lists) as the completed notebook a student would hand in:
    the instructor notebook with the bug's replacements made in its module cells."""
    nb = read(assignment.source)
    if name == "reference":
        return nb
    for cell in nb.cells:
        if cell.cell_type == "code" and "module" in cell.metadata.get("tags", []):
            try:
                cell.source = apply(cell.source, assignment.samples[name][1], name)
            except ValueError:
                pass  # the replacement belongs to another cell
    if nbformat.writes(nb) == nbformat.writes(read(assignment.source)):
        raise ValueError(f"sample {name}: no cell of the notebook changed")
    return nb
