"""autograde over the shipped samples: each gets its exact score and exactly the failed checks its bug explains."""
import csv
import json
import re

import pytest

from autograder import cli
from autograder.assignments import ROOT

SAMPLES = ROOT / "solutions" / "resnet50_cifar10" / "samples"
CHECKS = ROOT / "autograder" / "checks" / "resnet50_cifar10.py"
BLOCK_DOWN = {"block_down_output_shape", "block_down_layers", "block_down_stride", "block_down_residual"}
BLOCK_PLAIN = {"block_plain_output_shape", "block_plain_layers", "block_plain_strides", "block_plain_residual"}
NET = {"stem", "layer2", "avgpool", "fc_output", "total_parameters", "layer3", "layer3_parameters",
       "layer3_block_shapes", "layer4", "layer4_parameters", "layer4_block_shapes"}
TRAINING = {"training_gradient_reaches_every_layer", "training_loss_falls", "training_accuracy"}
ALL = BLOCK_DOWN | BLOCK_PLAIN | NET | TRAINING

EXPECTED = {  # sample: (score out of 120, the checks it fails)
    "reference": (120, set()),
    "reference_notebook": (120, set()),  # its training cells are not run
    "stride_on_3x3": (120, set()),  # torchvision's placement is as right as the paper's
    "release": (0, ALL),
    "release_notebook": (0, ALL),
    # the block cannot add an 8x8 main path to a 4x4 shortcut: nothing downsampling can run
    "no_stride_downsample": (20, ALL - BLOCK_PLAIN),
    "wrong_middle_width": (100, {"block_plain_layers", "layer3_parameters", "layer4_parameters", "total_parameters"}),
    # a plain 40-layer stack: shortcuts unused, and it learns measurably slower than the residual net
    "no_residual_add": (100, {"block_down_residual", "block_plain_residual", "training_gradient_reaches_every_layer",
                              "training_accuracy"}),
    "wrong_num_classes": (110, {"fc_output", "total_parameters"}),
    "wrong_avgpool": (40, NET | TRAINING),  # fc cannot take 1024 x 2 x 2: the net does not run
    "missing_block": (95, {"layer3", "layer3_parameters", "layer3_block_shapes", "total_parameters"}),
    "missing_block_notebook": (95, {"layer3", "layer3_parameters", "layer3_block_shapes", "total_parameters"}),
    "detached_features": (105, TRAINING),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("autograde")
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--jobs", "2",
                     *sorted(str(p) for p in SAMPLES.iterdir())]) == 0
    return out


def state(out, student):
    return json.loads((out / "state" / f"{student}.json").read_text())


def test_every_sample_is_shipped_and_expected():
    assert {p.name.rsplit(".", 1)[0] for p in SAMPLES.iterdir()} == set(EXPECTED)
    assert {p.suffix for p in SAMPLES.iterdir()} == {".py", ".ipynb"}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_sample_gets_its_exact_score_and_failures(graded, student):
    score, failing = EXPECTED[student]
    result = state(graded, student)
    assert {r["name"] for r in result["results"]} == ALL
    assert {r["name"] for r in result["results"] if not r["passed"]} == failing
    assert (result["score"], result["max_score"]) == (score, 120)


def test_feedback_explains_each_failure(graded):
    messages = {r["name"]: r["message"] for r in state(graded, "wrong_num_classes")["results"]}
    assert messages["fc_output"] == ("ResNet50_layer4(num_classes=10): expected output (1, 10), got (1, 100). Next "
                                     "step: fc maps the 1024 pooled features to num_classes: nn.Linear(1024, "
                                     "num_classes)")
    release = {r["name"]: r["message"] for r in state(graded, "release")["results"]}
    assert "NotImplementedError: fill in here" in release["block_down_stride"]
    assert "(cell " in {r["name"]: r["message"] for r in state(graded, "release_notebook")["results"]}["stem"]
    found = {r["name"]: r["message"] for r in state(graded, "stride_on_3x3")["results"]}["block_down_stride"]
    assert "3x3 (torchvision's placement)" in found
    found = {r["name"]: r["message"] for r in state(graded, "reference")["results"]}["block_down_stride"]
    assert "first 1x1 (the paper's placement)" in found
    feedback = (graded / "feedback" / "missing_block.md").read_text()
    assert "**Score: 95 / 120**" in feedback and "layer3: expected 4 blocks" in feedback


def test_feedback_shows_neither_check_source_nor_solution_code(graded):
    check_lines = {line.strip() for line in CHECKS.read_text().splitlines() if len(line.strip()) > 25}
    solution_lines = {line.strip() for line in (SAMPLES / "reference.py").read_text().splitlines()
                      if "conv1x1(" in line or "ResidualBlock(in_channels" in line}
    assert solution_lines
    for path in list((graded / "feedback").iterdir()) + list((graded / "results").iterdir()):
        text = path.read_text()
        assert not [line for line in check_lines if line in text], path.name
        assert not [line for line in solution_lines if line in text], path.name
        assert "Traceback" not in text and "def test_" not in text, path.name


def test_gradescope_results_format(graded):
    result = json.loads((graded / "results" / "wrong_num_classes.json").read_text())
    assert {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"} <= set(result)
    assert result["score"] == sum(t["score"] for t in result["tests"]) == 110
    for test in result["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
    assert "synthetic" in result["output"]


def test_grades_csv_and_summary(graded):
    with open(graded / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["student"] for r in rows} == set(EXPECTED)
    assert set(rows[0]) == {"student", "score", "max_score", "status"} | ALL
    by_student = {r["student"]: r for r in rows}
    assert by_student["wrong_num_classes"]["fc_output"] == "0" and by_student["wrong_num_classes"]["score"] == "110"
    assert all(r["status"] == "graded" for r in rows)
    summary = json.loads((graded / "summary.json").read_text())
    assert summary["students"] == len(EXPECTED) and summary["max_score"] == 120
    assert "synthetic" in summary["data"] and summary["device"] == "cpu"
    assert summary["checks"]["fc_output"]["passed"] == sum("fc_output" not in f for _, f in EXPECTED.values())
    assert re.search(r"uid|user|root", " ".join(summary["isolation"]))


def test_a_second_run_skips_finished_students_unless_forced(graded, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (graded / "state").iterdir()}
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(graded), str(SAMPLES / "reference.py"),
                     str(SAMPLES / "release.py")]) == 0
    assert "skipping 2 student(s) already graded" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (graded / "state").iterdir()} == before
