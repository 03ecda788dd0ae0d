"""The assignments: every folder solutions/<name>/ that holds a declaration (assignment.py) is one.

An assignment is a plug-in: its declaration names the instructor notebook (the one source of everything else),
the graded module both forms reduce to, and the sample bugs made from the reference; its hidden checks sit beside
it in checks.py. Nothing in the pipeline names an assignment, so adding one touches no module of the kit.
"""
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
DECLARATION = "assignment.py"
CHECKS = "checks.py"


@dataclass(frozen=True)
class Assignment:
    name: str  # folder under solutions/ and assignments/, and nbgrader's assignment id
    notebook: str  # the instructor notebook under solutions/<name>/
    module: str  # the graded .py both forms reduce to (code cells tagged "module")
    title: str = ""
    samples: dict = field(default_factory=dict, compare=False)  # bug name -> (what a student did, replacements)
    as_notebooks: tuple = ()  # samples also written as notebooks ("reference" or a bug's name)
    reference_run: dict = field(default_factory=dict, compare=False)  # `make reference-run`'s settings, when the
    # kit's common small budget (demo.NOTEBOOK_BUDGET) does not suit the notebook

    @property
    def folder(self) -> Path:
        return SOLUTIONS / self.name

    @property
    def source(self) -> Path:
        return self.folder / self.notebook

    @property
    def reference_module(self) -> Path:
        return self.folder / self.module

    @property
    def checks(self) -> Path:
        """The hidden checks: instructor side, never in the release."""
        return self.folder / CHECKS

    @property
    def samples_dir(self) -> Path:
        return self.folder / "samples"

    @property
    def release_dir(self) -> Path:
        return ROOT / "assignments" / self.name

    @property
    def student_notebook(self) -> Path:
        return self.release_dir / self.notebook

    @property
    def student_module(self) -> Path:
        return self.release_dir / self.module


def declared(folder: Path) -> Assignment:
    """The assignment declared by folder/assignment.py (NOTEBOOK, MODULE, TITLE, SAMPLES, AS_NOTEBOOKS,
    REFERENCE_RUN)."""
    spec = importlib.util.spec_from_file_location(f"assignment_{folder.name}", folder / DECLARATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Assignment(folder.name, module.NOTEBOOK, module.MODULE, getattr(module, "TITLE", folder.name),
                      getattr(module, "SAMPLES", {}), tuple(getattr(module, "AS_NOTEBOOKS", ())),
                      dict(getattr(module, "REFERENCE_RUN", {})))


def discover(solutions: Path = SOLUTIONS) -> dict:
    """{name: Assignment} of every declared assignment, in name order."""
    return {folder.name: declared(folder) for folder in sorted(solutions.iterdir())
            if (folder / DECLARATION).is_file()}


ASSIGNMENTS = discover()
