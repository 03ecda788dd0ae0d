"""Both notebooks executed top to bottom in a real Jupyter kernel (nbclient), on the synthetic set, smallest budget."""
import json

import pytest
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

from autograder.notebooks import execute, read, stdout_of

PROBE = """
import json
_model = ResNet50_layer4(num_classes=10).eval()
_x, _shapes = torch.randn(2, 3, 32, 32), {"stem_conv": list(_model.layer1[0](torch.randn(2, 3, 32, 32)).shape)}
with torch.no_grad():
    for _stage in ("layer1", "layer2", "layer3", "layer4", "avgpool"):
        _x = getattr(_model, _stage)(_x)
        _shapes[_stage] = list(_x.shape)
print("PROBE " + json.dumps({"parameters": sum(p.numel() for p in _model.parameters()), "shapes": _shapes,
                             "output": list(_model(torch.randn(3, 3, 32, 32)).shape)}))
"""


def first_error(nb):
    """(index, error output) of the first cell that raised."""
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                return i, output
    return None, None


@pytest.fixture(scope="module")
def instructor_run(assignment, smallest_budget, tmp_path_factory):
    nb = read(assignment.source)
    nb.cells.append(new_code_cell(PROBE))
    return execute(nb, cwd=tmp_path_factory.mktemp("instructor"), env=smallest_budget)


def test_instructor_notebook_runs_and_builds_the_course_network(instructor_run):
    probe = json.loads(stdout_of(instructor_run.cells[-1]).split("PROBE ", 1)[1])
    assert probe["parameters"] == 14_750_730
    assert probe["shapes"] == {
        "stem_conv": [2, 64, 16, 16], "layer1": [2, 64, 8, 8], "layer2": [2, 256, 4, 4],
        "layer3": [2, 512, 2, 2], "layer4": [2, 1024, 2, 2], "avgpool": [2, 1024, 1, 1],
    }
    assert probe["output"] == [3, 10]


def test_instructor_notebook_trains_both_models_and_says_which_data(instructor_run, smallest_budget):
    log = "".join(stdout_of(c) for c in instructor_run.cells)
    assert "Data: the kit's synthetic CIFAR-10-format set" in log
    assert "VGG-16 epoch 1/1" in log and "ResNet-50 (layer4) epoch 1/1" in log
    out = smallest_budget["KIT_OUTPUT_DIR"]
    history = json.loads(open(f"{out}/history.json").read())
    assert history["data"] == "the kit's synthetic CIFAR-10-format set"
    assert set(history["histories"]) == {"VGG-16", "ResNet-50 (layer4)"}
    with open(f"{out}/curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_released_notebook_stops_at_the_first_stub(assignment, smallest_budget, tmp_path):
    nb = read(assignment.student_notebook)
    with pytest.raises(CellExecutionError) as raised:
        execute(nb, cwd=tmp_path, env=smallest_budget)
    assert raised.value.ename == "NotImplementedError"
    assert "fill in here" in raised.value.evalue
    index, _ = first_error(nb)
    assert nb.cells[index].metadata.nbgrader.grade_id == "check_residual_block"
    assert "ResidualBlock(" in nb.cells[index].source
    assert all(c.get("execution_count") for c in nb.cells[:index] if c.cell_type == "code")
