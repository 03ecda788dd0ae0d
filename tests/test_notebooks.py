"""Both notebooks executed top to bottom in a real Jupyter kernel (nbclient), on the synthetic set, smallest budget;
the settings a run replaces, and how `make reference-run` runs the notebook."""
import json
import os

import pytest
import torch
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

from autograder import demo
from autograder.assignments import ASSIGNMENTS
from autograder.notebooks import SETTINGS_TAG, execute, read, stdout_of, tagged, with_settings
from tests.helpers import every_assignment, facts_of  # noqa: F401 (fixtures: each test, every assignment)

THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}  # the kernel: two threads, like the machine

def first_error(nb):
    """(index, error output) of the first cell that raised."""
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                return i, output
    return None, None


@pytest.fixture(scope="module")
def instructor_run(assignment, facts, smallest_budget, tmp_path_factory):
    nb = read(assignment.source)
    nb.cells.append(new_code_cell(facts["probe"]))
    out = tmp_path_factory.mktemp("outputs")
    run = execute(with_settings(nb, {**smallest_budget, "OUTPUT_DIR": str(out)}),
                  cwd=tmp_path_factory.mktemp("instructor"), env=THREADS)
    return run, out


def test_instructor_notebook_runs_and_builds_the_course_network(instructor_run, facts):
    probe = json.loads(stdout_of(instructor_run[0].cells[-1]).split("PROBE ", 1)[1])
    assert probe == facts["network"]


def test_instructor_notebook_trains_every_model_and_says_which_data(instructor_run, facts):
    run, out = instructor_run
    log = "".join(stdout_of(c) for c in run.cells)
    assert "Data: a synthetic CIFAR-10-format set" in log
    assert all(f"{name} epoch 1/1" in log for name in facts["trained"])
    history = json.loads((out / "history.json").read_text())
    assert history["data"] == facts.get("history_data", "a synthetic CIFAR-10-format set")
    assert set(history["histories"]) == facts["trained"]
    with open(out / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_released_notebook_stops_at_the_first_stub(assignment, facts, smallest_budget, tmp_path):
    nb = with_settings(read(assignment.student_notebook), smallest_budget)
    with pytest.raises(CellExecutionError) as raised:
        execute(nb, cwd=tmp_path, env=THREADS)
    assert raised.value.ename == "NotImplementedError"
    assert "fill in here" in raised.value.evalue
    index, _ = first_error(nb)
    assert nb.cells[index].metadata.nbgrader.grade_id == facts["first_stub"][0]
    assert nb.cells[index].source == f"{facts['first_stub'][1]}()"
    assert all(c.get("execution_count") for c in nb.cells[:index] if c.cell_type == "code")


def test_with_settings_replaces_the_values_of_the_settings_cell_only(assignment, facts):
    nb = read(assignment.source)
    changed = with_settings(nb, {"EPOCHS": 1, "OUTPUT_DIR": "elsewhere", "DOWNLOAD": False})
    before, after = tagged(nb, SETTINGS_TAG)[0].source, tagged(changed, SETTINGS_TAG)[0].source
    assert facts["epochs_line"] in before and facts["epochs_line"] not in after
    assert {"EPOCHS = 1", "OUTPUT_DIR = 'elsewhere'", "DOWNLOAD = False"} <= set(after.splitlines())
    assert len(after.splitlines()) == len(before.splitlines())
    others = [(a.source, b.source) for a, b in zip(nb.cells, changed.cells)
              if SETTINGS_TAG not in a.metadata.get("tags", [])]
    assert all(a == b for a, b in others) and len(others) == len(nb.cells) - 1
    with pytest.raises(ValueError, match="assigns no \\['EPOCH'\\]"):
        with_settings(nb, {"EPOCH": 1})


@pytest.fixture
def no_side_effects(monkeypatch, tmp_path):
    """demo.main with releasing, grading and running recorded instead of done."""
    calls = []
    monkeypatch.setattr(demo, "release", lambda a: calls.append(("release", a.name)) or [])
    monkeypatch.setattr(demo, "notebook_run", lambda a, data, out: calls.append(("notebook_run", a.name)) or True)
    monkeypatch.setattr(demo.cli, "main", lambda argv: calls.append(("autograde",)) or 0)
    monkeypatch.setattr(demo, "ensure_stand_ins", lambda root: tmp_path)
    monkeypatch.setattr(demo, "describe_all", str)
    return calls


def test_reference_run_leaves_the_release_alone_and_demo_releases(no_side_effects):
    assert demo.main(["--notebook"]) == 0
    assert no_side_effects == [("notebook_run", name) for name in sorted(ASSIGNMENTS)]
    no_side_effects.clear()
    assert demo.main([]) == 0
    assert no_side_effects == [("release", name) for name in sorted(ASSIGNMENTS)] + [("autograde",)] * len(ASSIGNMENTS)


def test_reference_run_reads_the_history_where_the_notebook_wrote_it(assignment, monkeypatch, tmp_path):
    """KIT_OUTPUT_DIR moves the notebook's outputs; the run's summary must read them from there."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("KIT_OUTPUT_DIR", str(elsewhere))
    monkeypatch.setenv("KIT_EPOCHS", "2")
    ran = {}

    def fake_execute(nb, cwd, env=None, timeout=900, on_cell_executed=None):
        # run only the settings cell the demo hands the kernel, then write what the notebook's last cells write
        os.makedirs(cwd, exist_ok=True)
        cell = next(c for c in nb.cells if c.cell_type == "code" and "\nOUTPUT_DIR = " in c.source)
        namespace = {"torch": torch, "print": lambda *a, **k: None}
        exec(cell.source, namespace)
        ran.update(namespace)
        out = os.path.join(cwd, namespace["OUTPUT_DIR"])
        os.makedirs(out, exist_ok=True)
        history = {"train_loss": [2.3, 1.9], "train_acc": [10, 30], "test_loss": [2.2, 2.0], "test_acc": [12, 25]}
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump({"data": "made up", "histories": {"ResNet": history}}, f)
        return nb

    monkeypatch.setattr(demo, "execute", fake_execute)
    assert demo.notebook_run(assignment, tmp_path / "data", tmp_path / "out") is True
    assert (elsewhere / "history.json").exists() and not (tmp_path / "out" / "history.json").exists()
    budget = assignment.reference_run or demo.NOTEBOOK_BUDGET
    assert ran["EPOCHS"] == 2 and ran["TRAIN_SUBSET"] == budget["TRAIN_SUBSET"]
    assert ran["DATA_DIR"] == str(tmp_path / "data") and ran["DOWNLOAD"] is False
