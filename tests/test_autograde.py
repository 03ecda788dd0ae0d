"""autograde over the shipped samples: each gets its exact score and exactly the failed checks its bug explains."""
import csv
import json
import shutil

import pytest
import torch

from autograder import cli, report, sandbox
from autograder.assignments import ROOT
from autograder.grade import StudentResult
from autograder.probes import FIT_FLOOR
from tests.helpers import assert_feedback_hides, assert_graded, demo_results, long_lines, messages, state

SAMPLES = ROOT / "solutions" / "resnet50_cifar10" / "samples"
CHECKS = ROOT / "solutions" / "resnet50_cifar10" / "checks.py"
BLOCK_DOWN = {"block_down_output_shape", "block_down_layers", "block_down_stride", "block_down_residual"}
BLOCK_PLAIN = {"block_plain_output_shape", "block_plain_layers", "block_plain_strides", "block_plain_residual"}
NET = {"stem", "layer2", "avgpool", "fc_output", "total_parameters", "layer3", "layer3_parameters",
       "layer3_block_shapes", "layer4", "layer4_parameters", "layer4_block_shapes"}
TRAINING = {"training_gradient_reaches_every_layer", "training_loss_falls", "training_keeps_up"}
ALL = BLOCK_DOWN | BLOCK_PLAIN | NET | TRAINING

EXPECTED = {  # sample: (score out of 120, the checks it fails)
    "reference": (120, set()),
    "reference_notebook": (120, set()),  # its training cells are not run
    "stride_on_3x3": (120, set()),  # torchvision's placement is as right as the paper's
    "release": (0, ALL),
    "release_notebook": (0, ALL),
    # the block cannot add an 8x8 main path to a 4x4 shortcut: nothing downsampling runs, nor the whole net; the
    # stages without a downsampling block (layer1, layer4), the pool, fc and the parameter counts still earn points
    "no_stride_downsample": (65, BLOCK_DOWN | {"layer2", "layer3", "layer3_block_shapes"} | TRAINING),
    "wrong_middle_width": (100, {"block_plain_layers", "layer3_parameters", "layer4_parameters", "total_parameters"}),
    # a plain 40-layer stack: shortcuts unused, and it learns measurably slower than the residual net
    "no_residual_add": (100, {"block_down_residual", "block_plain_residual", "training_gradient_reaches_every_layer",
                              "training_keeps_up"}),
    "wrong_num_classes": (110, {"fc_output", "total_parameters"}),
    # fc cannot take 1024 x 2 x 2: the net does not run, but every stage exported alone is right except the pool
    "wrong_avgpool": (100, {"avgpool"} | TRAINING),
    "missing_block": (95, {"layer3", "layer3_parameters", "layer3_block_shapes", "total_parameters"}),
    "missing_block_notebook": (95, {"layer3", "layer3_parameters", "layer3_block_shapes", "total_parameters"}),
    "detached_features": (105, TRAINING),
}


@pytest.fixture(scope="module")
def graded(demo, tmp_path_factory):
    return demo_results(demo, "resnet50_cifar10", tmp_path_factory)


def test_every_sample_is_shipped_and_expected():
    assert {p.name.rsplit(".", 1)[0] for p in SAMPLES.iterdir()} == set(EXPECTED)
    assert {p.suffix for p in SAMPLES.iterdir()} == {".py", ".ipynb"}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_sample_gets_its_exact_score_and_failures(graded, student):
    assert_graded(graded, student, ALL, *EXPECTED[student], max_score=120)


def test_feedback_explains_each_failure(graded):
    said = messages(graded, "wrong_num_classes")
    assert said["fc_output"] == ("ResNet50_layer4(num_classes=10): expected output (1, 10), got (1, 100). Next "
                                 "step: fc maps the 1024 pooled features to num_classes: nn.Linear(1024, "
                                 "num_classes)")
    release = {r["name"]: r for r in state(graded, "release")["results"]}
    first = release["block_down_output_shape"]  # one message per cause: the first check says it in full
    assert "NotImplementedError: fill in here" in first["said"] and "could not be built" in first["message"]
    assert release["block_down_stride"]["message"] == (
        "not graded: the same cause as \u201cResidualBlock(downsample=True) halves H and W and gives out_channels\u201d "
        "above")
    assert "(cell " in {r["name"]: r["said"] for r in state(graded, "release_notebook")["results"]}["stem"]
    parts = {r["name"]: r for r in state(graded, "no_stride_downsample")["results"]}
    assert parts["layer3"]["message"].startswith(
        "ResNet50_layer4(num_classes=10).layer3 could not run on an input of shape (4, 256, 4, 4)")
    assert "must match the size of tensor" in parts["layer3"]["said"]
    assert parts["layer4"]["passed"] and parts["stem"]["passed"]  # right stages earn points beside broken ones
    pool = messages(graded, "wrong_avgpool")["avgpool"]
    assert pool == ("avgpool: expected output 1024 x 1 x 1, got (1024, 2, 2). Next step: self.avgpool = "
                    "nn.AvgPool2d(kernel_size=2, stride=1)")
    found = messages(graded, "stride_on_3x3")["block_down_stride"]
    assert "3x3 (torchvision's placement)" in found
    found = messages(graded, "reference")["block_down_stride"]
    assert "first 1x1 (the paper's placement)" in found
    feedback = (graded / "feedback" / "missing_block.md").read_text()
    assert "**Score: 95 / 120**" in feedback and "layer3: expected 4 blocks" in feedback


def test_the_cpu_training_run_fits_one_fixed_batch_and_says_so(graded):
    """On the CPU the run is 8 steps on one batch: the plain stack's lowest loss on it is many times the
    reference's, and its feedback says what was measured against what."""
    budget = state(graded, "reference")["key"]["budget"]
    assert budget["steps"] == 8 and budget["batch"] == 32 and budget["one_batch"]
    summary = json.loads((graded / "summary.json").read_text())
    ref = summary["reference_training"]
    assert "accuracy" not in ref and 0 < ref["fit"] < ref["first_loss"] / 10
    plain = messages(graded, "no_residual_add")["training_keeps_up"]
    assert f"expected a loss of at most {max(5 * ref['fit'], FIT_FLOOR):.3f} on one fixed batch within 8 steps" in plain
    assert f"5x the reference's lowest, {ref['fit']:.3f}" in plain and "shortcuts" in plain
    honest = messages(graded, "stride_on_3x3")["training_keeps_up"]
    assert "on one fixed batch of 32" in honest and f"(reference: lowest loss {ref['fit']:.3f}" in honest


def test_feedback_shows_neither_check_source_nor_solution_code(graded):
    solution_lines = {line.strip() for line in (SAMPLES / "reference.py").read_text().splitlines()
                      if "conv1x1(" in line or "ResidualBlock(in_channels" in line}
    assert_feedback_hides(graded, long_lines(CHECKS), solution_lines)


def test_gradescope_results_format(graded):
    result = json.loads((graded / "results" / "wrong_num_classes.json").read_text())
    assert {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"} <= set(result)
    assert result["score"] == sum(t["score"] for t in result["tests"]) == 110
    for test in result["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
    assert "synthetic" in result["output"] and result["output_format"] == "md"
    timings = state(graded, "wrong_num_classes")["timings"]
    assert result["execution_time"] == round(timings["total"], 2) < sum(timings.values())  # nothing counted twice
    assert "/tmp/" not in json.dumps(result) and str(ROOT) not in json.dumps(result)  # no grader paths


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
    assert "synthetic" in summary["data"] and summary["device"] == cli.pick_device("auto")
    assert summary["checks"]["fc_output"]["passed"] == sum("fc_output" not in f for _, f in EXPECTED.values())
    assert summary["isolation"] == sandbox.isolation()
    # workers are spawned, never forked from a process that may hold a CUDA context
    assert summary["start_method"] == "spawn" and summary["workers"]
    assert all(w["start_method"] == "spawn" and not w["cuda_initialized"] for w in summary["workers"])


def test_a_second_run_skips_finished_students_unless_forced(graded, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (graded / "state").iterdir()}
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(graded), str(SAMPLES / "reference.py"),
                     str(SAMPLES / "release.py")]) == 0
    assert "skipping 2 student(s) already graded from the same submission" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (graded / "state").iterdir()} == before


def test_a_changed_submission_is_graded_again(graded, tmp_path):
    """Resume trusts a stored result only when it came from the same submission and settings. The changed one is
    graded with --cold-sandbox: a fresh child gives what the demo's warm children gave."""
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    changed = tmp_path / "reference.py"  # same student name, different work
    changed.write_text((SAMPLES / "wrong_num_classes.py").read_text())
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--cold-sandbox", str(changed),
                     str(SAMPLES / "wrong_num_classes.py")]) == 0
    assert_graded(out, "reference", ALL, *EXPECTED["wrong_num_classes"], max_score=120)  # as the warm one was
    assert state(out, "wrong_num_classes") == state(graded, "wrong_num_classes")  # unchanged: not graded again
    assert json.loads((out / "summary.json").read_text())["isolation"] == sandbox.isolation(warm=False)


def test_resume_keeps_only_results_of_the_same_settings(tmp_path):
    result = StudentResult("ann", "ann.py", [], key={"submission": "abc", "device": "cpu"})
    report.write_student(tmp_path, result, "resnet50_cifar10")
    assert report.done(tmp_path, "ann", {"submission": "abc", "device": "cpu"})
    assert not report.done(tmp_path, "ann", {"submission": "abd", "device": "cpu"})
    assert not report.done(tmp_path, "ann", {"submission": "abc", "device": "cuda"})
    report.write_student(tmp_path, StudentResult("ann", "ann.py", [], cause="internal: boom",
                                                 key={"submission": "abc", "device": "cpu"}), "resnet50_cifar10")
    assert not report.done(tmp_path, "ann", {"submission": "abc", "device": "cpu"})  # an internal error is not done
    (tmp_path / "state" / "ann.json").write_text("{not json")
    assert not report.done(tmp_path, "ann", {"submission": "abc", "device": "cpu"})


def test_an_out_folder_of_another_assignment_is_refused(tmp_path, capsys):
    report.claim(tmp_path, "some_other_assignment")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--assignment", "resnet50_cifar10", "--out", str(tmp_path), str(SAMPLES / "reference.py")])
    assert exited.value.code == 2
    assert "holds results of the assignment some_other_assignment" in capsys.readouterr().err


def test_a_mistyped_data_dir_fails_instead_of_falling_back(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--assignment", "resnet50_cifar10", "--out", str(tmp_path / "out"), "--data-dir",
                  str(tmp_path / "cifra10"), str(SAMPLES / "reference.py")])
    assert exited.value.code == 2
    assert "no CIFAR-10 there" in capsys.readouterr().err
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: --device cuda is valid")
def test_device_cuda_without_a_gpu_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--assignment", "resnet50_cifar10", "--out", str(tmp_path), "--device", "cuda",
                  str(SAMPLES / "reference.py")])
    assert exited.value.code == 2
    assert "--device cuda: no CUDA device is available here" in capsys.readouterr().err
    assert cli.pick_device("auto") == "cpu"
