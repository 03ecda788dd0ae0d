import importlib.util
import json

import pytest

from autograder.assignments import ASSIGNMENTS
from tests.facts import FACTS


def import_file(path):
    """Import a .py file under a fresh name (the kit's own reference and release modules, never a submission)."""
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def state(out, student):
    """A graded student's full stored result."""
    return json.loads((out / "state" / f"{student}.json").read_text())


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
