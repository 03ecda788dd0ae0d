"""The student release is nbgrader's output of the instructor notebook: in sync, stubbed, and free of solutions."""
import re

import pytest
import torch

from autograder.notebooks import read
from autograder.release import STUB, stale
from tests.helpers import import_file

SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def solution_lines(assignment):
    """Lines written only inside the instructor notebook's solution regions: what the release must not show."""
    source = "\n".join(c.source for c in read(assignment.source).cells)
    inside = {line.strip() for region in SOLUTION_REGION.findall(source) for line in region.splitlines()}
    outside = {line.strip() for line in SOLUTION_REGION.sub("", source).splitlines()}
    return {line for line in inside - outside if line}


def released_texts(assignment):
    """The student's two files as code: the notebook's cell sources joined, and the .py."""
    notebook = "\n".join(c.source for c in read(assignment.student_notebook).cells)
    return {assignment.notebook: notebook, assignment.module: assignment.student_module.read_text()}


def test_release_is_in_sync_with_the_instructor_notebook(assignment):
    assert stale(assignment) == [], "the release drifted from solutions/: run `make release` and commit"


def test_release_shows_no_solution_code(assignment):
    lines = solution_lines(assignment)
    assert len(lines) >= 15  # the two block branches and every layer of the net
    for name, text in released_texts(assignment).items():
        leaked = sorted(line for line in lines if line in text)
        assert not leaked, f"{name} shows solution lines: {leaked}"


def test_every_solution_region_became_a_stub(assignment):
    regions = len(SOLUTION_REGION.findall("\n".join(c.source for c in read(assignment.source).cells)))
    assert regions == 7
    for name, text in released_texts(assignment).items():
        assert text.count(STUB) == regions, name
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name


def test_no_hidden_tests_anywhere(assignment):
    for path in (assignment.source, assignment.student_notebook, assignment.student_module):
        assert "HIDDEN TESTS" not in path.read_text(), path


def test_cells_carry_nbgrader_metadata(assignment):
    cells = read(assignment.student_notebook).cells
    marked = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader for c in cells if "nbgrader" in c.metadata}
    assert {gid for gid, m in marked.items() if m.solution} == {"residual_block", "resnet50_layer4"}
    assert all(not m.locked for m in marked.values() if m.solution)
    assert all(m.locked for m in marked.values() if not m.solution)
    assert all(c.metadata.nbgrader.locked for c in cells if c.cell_type == "markdown")
    assert {"check_residual_block", "check_resnet50_layer4", "conv_helpers"} <= set(marked)
    assert all(not c.get("outputs") for c in cells)


def test_reference_module_builds_the_course_network(assignment):
    reference = import_file(assignment.reference_module)
    model = reference.ResNet50_layer4(num_classes=10).eval()
    assert sum(p.numel() for p in model.parameters()) == 14_750_730
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    with torch.no_grad():
        out = x
        for stage in ("layer1", "layer2", "layer3", "layer4", "avgpool"):
            out = getattr(model, stage)(out)
            shapes[stage] = tuple(out.shape[1:])
        assert model(x).shape == (2, 10)
    assert shapes == {"layer1": (64, 8, 8), "layer2": (256, 4, 4), "layer3": (512, 2, 2),
                      "layer4": (1024, 2, 2), "avgpool": (1024, 1, 1)}


@pytest.mark.parametrize("build", [
    lambda m: m.ResidualBlock(64, 64, 256, downsample=True),
    lambda m: m.ResidualBlock(64, 64, 256, downsample=False),
    lambda m: m.ResNet50_layer4(num_classes=10),
], ids=["block-downsample", "block-plain", "net"])
def test_student_module_imports_and_fails_clearly_at_each_stub(assignment, build):
    skeleton = import_file(assignment.student_module)  # definitions only: importing runs nothing
    with pytest.raises(NotImplementedError, match="fill in here"):
        build(skeleton)

