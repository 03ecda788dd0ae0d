"""Submissions that break, hang, hog, exit, flood or tamper: each gets a clear cause, the batch always finishes,
and nobody's score moves because of them."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import cli, sandbox
from autograder.assignments import ROOT

SAMPLES = ROOT / "solutions" / "resnet50_cifar10" / "samples"
REFERENCE = (SAMPLES / "reference.py").read_text()
WITH_CLASS_BODY = REFERENCE + "\n\nclass Extra:\n{}\n"


def indented(code):
    return "\n".join("    " + line for line in code.strip().splitlines())


BAD = {  # file name: contents
    "empty.py": "",
    "invalid_json.ipynb": '{"cells": [ this is not json',
    "binary_junk.ipynb": bytes(range(256)) * 40,
    "syntax_error.py": REFERENCE.replace("class ResidualBlock(nn.Module):", "class ResidualBlock(nn.Module)"),
    "endless_loop.py": WITH_CLASS_BODY.format(indented("while True:\n    pass")),
    "huge_allocation.py": REFERENCE.replace(
        "        self.fc = nn.Linear(1024, num_classes)\n",
        "        self.hog = torch.zeros(1 << 40)  # 4 TB\n        self.fc = nn.Linear(1024, num_classes)\n"),
    "exit_at_top_level.py": REFERENCE + "\nimport sys, os\nsys.exit(3)\nos._exit(4)\n",
    "exit_in_class_body.py": WITH_CLASS_BODY.format(indented("import os\nos._exit(4)")),
    "floods_output.py": WITH_CLASS_BODY.format(indented("for _ in range(50):\n    print('x' * 1_000_000)")),
    "renamed_class.py": REFERENCE.replace("class ResNet50_layer4(nn.Module):", "class ResNet50(nn.Module):"),
    "colab_import.py": "from google.colab import drive\n" + REFERENCE,
    # the honest twin is wrong_num_classes (110): tampering must not raise that
    "tamper.py": (SAMPLES / "wrong_num_classes.py").read_text() + "\n" + """
import glob, json, os, torch
torch.allclose = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: True


class Tamper:
    fake = {"score": 999, "tests": []}
    for target in ["results.json", "../results.json", "/tmp/results.json", *glob.glob("/tmp/*/results/*.json"),
                   *glob.glob("/tmp/pytest-of-*/**/results/*.json", recursive=True)]:
        try:
            with open(target, "w") as f:
                json.dump(fake, f)
        except OSError:
            pass
    try:
        import _pytest.reports
        _pytest.reports.TestReport.passed = property(lambda self: True)
    except ImportError:
        pass
""",
}
EXPECTED = {  # student: (score, cause prefix or None)
    "empty": (0, "load: empty.py is empty"),
    "invalid_json": (0, "load: invalid_json.ipynb is not a valid notebook"),
    "binary_junk": (0, "load: binary_junk.ipynb is not a text file"),
    "syntax_error": (0, "load: syntax_error.py has a syntax error at line"),
    "endless_loop": (0, "timeout"),
    "huge_allocation": (40, "memory: building ResNet50_layer4"),  # the blocks are still graded
    "exit_at_top_level": (120, None),  # top-level statements are never run
    "exit_in_class_body": (0, "exit"),
    "floods_output": (120, None),
    "tamper": (110, None),
    "reference": (120, None),
    "renamed_class": (40, "missing name: the submission defines no ResNet50_layer4"),  # blocks still graded
    "colab_import": (120, None),  # a module the grader lacks is a note, not a zero
    "endless_training": (120, None),  # correct definitions beside a training loop that never ends
    "zipped_alice": (120, None),
    "zipped_bob": (0, None),
}


def test_every_crafted_submission_differs_from_the_reference():
    assert all(content != REFERENCE for content in BAD.values())


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, content in BAD.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "reference.py").write_text(REFERENCE)
    notebook = nbformat.read(str(SAMPLES / "reference_notebook.ipynb"), as_version=4)
    notebook.cells.append(new_code_cell("while True:\n    histories = {name: train(name, VGG16())}"))
    nbformat.write(notebook, str(folder / "endless_training.ipynb"))
    with zipfile.ZipFile(folder / "class.zip", "w") as z:  # a zip of one folder per student
        z.write(SAMPLES / "reference_notebook.ipynb", "zipped_alice/resnet50_cifar10.ipynb")
        z.write(SAMPLES / "release.py", "zipped_bob/resnet50_skeleton.py")
        z.writestr("../escape.py", "print('outside')")
    out = tmp_path_factory.mktemp("out")
    started = time.monotonic()
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--jobs", "2", "--timeout", "40",
                     *sorted(str(p) for p in folder.iterdir())]) == 0
    return out, time.monotonic() - started


def state(out, student):
    return json.loads((out / "state" / f"{student}.json").read_text())


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_gets_its_score_and_one_clear_cause(batch, student):
    out, _ = batch
    score, cause = EXPECTED[student]
    result = state(out, student)
    assert result["score"] == score, result["cause"]
    if cause:
        assert result["cause"].startswith(cause), result["cause"]
        if score == 0:  # every check carries the cause, and none claims a pass
            assert all(not r["passed"] for r in result["results"])
    else:
        assert result["cause"] is None


def test_syntax_error_names_the_line(batch):
    cause = state(batch[0], "syntax_error")["cause"]
    line = REFERENCE.splitlines().index("class ResidualBlock(nn.Module):") + 1
    assert f"line {line}: expected ':'" in cause


def test_memory_is_named_where_it_ran_out(batch):
    messages = {r["name"]: r["message"] for r in state(batch[0], "huge_allocation")["results"]}
    assert messages["stem"].startswith("memory: building ResNet50_layer4(num_classes=10) asked for more memory")
    assert all(messages[n] == "ok" or "stride" in messages[n] for n in ("block_down_output_shape", "block_down_stride"))


def test_a_missing_name_and_an_unavailable_import_are_explained(batch):
    messages = {r["name"]: r["message"] for r in state(batch[0], "renamed_class")["results"]}
    assert messages["stem"].startswith("missing name: the submission defines no ResNet50_layer4")
    notes = state(batch[0], "colab_import")["notes"]
    assert notes == ["colab_import.py, line 1: ModuleNotFoundError: No module named 'google'"]


def test_timeout_and_exit_causes_reach_the_feedback(batch):
    out, _ = batch
    assert "timeout" in (out / "feedback" / "endless_loop.md").read_text()
    assert "exit" in json.loads((out / "results" / "exit_in_class_body.json").read_text())["output"]


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.child_interpreter() is None,
                    reason="as an ordinary user the child can write wherever that user can (README, isolation)")
def test_tampering_changed_nothing_outside_its_sandbox(batch):
    out, _ = batch
    assert json.loads((out / "results" / "reference.json").read_text())["score"] == 120
    assert all(json.loads(p.read_text())["score"] != 999 for p in (out / "results").iterdir())
    assert not (out / "escape.py").exists() and not (out.parent / "escape.py").exists()


def test_a_partly_graded_submission_says_so_in_the_class_files(batch):
    out, _ = batch
    rows = (out / "grades.csv").read_text().splitlines()
    assert [r for r in rows if r.startswith("huge_allocation,")][0].endswith(",40,120,partly graded (memory)")
    assert [r for r in rows if r.startswith("endless_loop,")][0].endswith(",0,120,not graded (timeout)")


def test_the_batch_finished_with_every_student(batch):
    out, seconds = batch
    assert {p.stem for p in (out / "state").iterdir()} == set(EXPECTED)
    with open(out / "grades.csv") as f:
        assert len(f.read().splitlines()) == len(EXPECTED) + 1


def test_an_interrupted_run_keeps_finished_results_and_resumes(tmp_path):
    out = tmp_path / "out"
    subs = [str(SAMPLES / f) for f in ("reference.py", "release.py", "wrong_num_classes.py", "missing_block.py")]
    args = [sys.executable, "-m", "autograder.cli", "--assignment", "resnet50_cifar10", "--out", str(out), *subs]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((out / "state").glob("*.json"))) < 1:
        time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=120) == 130
    finished = {p.stem for p in (out / "state").glob("*.json")}
    assert 1 <= len(finished) < 4
    for student in finished:
        assert json.loads((out / "results" / f"{student}.json").read_text())["tests"]
    assert not [p for p in (out / "state").iterdir() if p.name.startswith(".")]  # no half-written files
    with open(out / "grades.csv") as f:
        assert len(f.read().splitlines()) == len(finished) + 1
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), *subs]) == 0
    assert {p.stem for p in (out / "state").iterdir()} == {"reference", "release", "wrong_num_classes",
                                                           "missing_block"}


def test_a_ctrl_c_that_python_drops_still_stops_the_batch(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised inside Python's at-fork handlers (each sandbox run forks) is reported as
    unraisable and lost; the batch must stop after the student in hand all the same."""
    graded = []

    def grade_swallowing_ctrl_c(student, path, context, scratch, slot=1):
        graded.append(student)
        if len(graded) == 1:
            try:
                cli._on_ctrl_c(signal.SIGINT, None)  # what Ctrl-C runs, its exception then dropped
            except KeyboardInterrupt:
                pass
        return cli.StudentResult(student, str(path), [])

    monkeypatch.setattr(cli, "grade", grade_swallowing_ctrl_c)
    monkeypatch.setattr(cli, "_INTERRUPTED", False)
    try:
        code = cli.main(["--assignment", "resnet50_cifar10", "--out", str(tmp_path),
                         str(SAMPLES / "reference.py"), str(SAMPLES / "release.py")])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == 130
    assert graded == ["reference"]
    assert [p.stem for p in (tmp_path / "state").iterdir()] == ["reference"]
