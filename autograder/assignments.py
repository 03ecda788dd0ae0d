"""Where each assignment's files live: the instructor notebook is the one source of everything else."""
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Assignment:
    name: str  # folder under solutions/ and assignments/, and nbgrader's assignment id
    notebook: str  # the instructor notebook under solutions/<name>/
    module: str  # the graded .py both forms reduce to (code cells tagged "module")

    @property
    def source(self) -> Path:
        return ROOT / "solutions" / self.name / self.notebook

    @property
    def reference_module(self) -> Path:
        return ROOT / "solutions" / self.name / self.module

    @property
    def release_dir(self) -> Path:
        return ROOT / "assignments" / self.name

    @property
    def student_notebook(self) -> Path:
        return self.release_dir / self.notebook

    @property
    def student_module(self) -> Path:
        return self.release_dir / self.module


ASSIGNMENTS = {
    a.name: a
    for a in [
        Assignment("resnet50_cifar10", "resnet50_cifar10.ipynb", "resnet50_skeleton.py"),
    ]
}
