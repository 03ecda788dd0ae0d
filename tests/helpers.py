import importlib.util
import json
import shutil

import pytest
import torch

from autograder import export, rebuild
from autograder.assignments import ASSIGNMENTS
from tests.facts import FACTS


def demo_results(demo, name, tmp_path_factory):
    """A copy of what `make demo` (the session's `demo` fixture) wrote for assignment `name`: every sample graded
    with --jobs 2. A copy, so tests that grade into it again leave the others' alone."""
    out = tmp_path_factory.mktemp(f"demo-{name}") / "out"
    shutil.copytree(demo.graded / name, out)
    return out


def nested(top, depth=1200):
    """Folders top/d/d/... `depth` deep; returns them, deepest last. shutil.rmtree recurses (so would pytest's own
    cleanup of tmp_path), so a test removes them with remove_nested."""
    folders, here = [], top
    for _ in range(depth):
        here = here / "d"
        here.mkdir()
        folders.append(here)
    return folders


def remove_nested(folders):
    for folder in reversed(folders):
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()


def import_file(path):
    """Import a .py file under a fresh name (the kit's own reference and release modules, never a submission)."""
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exported(model, shape, tmp_path, train=True, name="m"):
    """Export `model`, write it as the child does, and rebuild it from those files alone."""
    torch.manual_seed(0)
    graph, tensors = export.export_model(model, [torch.randn(*shape)], train=train)
    export.save(name, graph, tensors, tmp_path)
    return rebuild.load(tmp_path, name)


def assert_feedback_hides(out, check_lines, solution_lines):
    """No feedback or Gradescope file of the run shows a line of the checks or of the solution, or a traceback."""
    assert solution_lines
    for path in list((out / "feedback").iterdir()) + list((out / "results").iterdir()):
        text = path.read_text()
        assert not [line for line in check_lines if line in text], path.name
        assert not [line for line in solution_lines if line in text], path.name
        assert "Traceback" not in text and "def test_" not in text, path.name


def long_lines(path, longer_than=25):
    """The file's stripped lines longer than `longer_than` characters: distinctive enough to spot in feedback."""
    return {line.strip() for line in path.read_text().splitlines() if len(line.strip()) > longer_than}


def state(out, student):
    """A graded student's full stored result."""
    return json.loads((out / "state" / f"{student}.json").read_text())


def messages(out, student):
    """A graded student's feedback message per check."""
    return {r["name"]: r["message"] for r in state(out, student)["results"]}


def assert_graded(out, student, checks, score, failing, max_score):
    """The student was graded on exactly `checks`, failed exactly `failing`, and scored `score` of `max_score`."""
    result = state(out, student)
    assert {r["name"] for r in result["results"]} == checks
    assert {r["name"] for r in result["results"] if not r["passed"]} == failing
    assert (result["score"], result["max_score"]) == (score, max_score)


@pytest.fixture(scope="module", params=sorted(ASSIGNMENTS), name="assignment")
def every_assignment(request):
    """A test module that imports this runs each of its tests for every assignment."""
    return ASSIGNMENTS[request.param]


@pytest.fixture(scope="module", name="facts")
def facts_of(assignment):
    """What the tests know of the assignment in hand (tests/facts.py)."""
    return FACTS[assignment.name]
