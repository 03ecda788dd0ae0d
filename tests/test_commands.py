"""Every command the README names exists and runs: the Makefile targets and the console scripts."""
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
import torch

from autograder.assignments import ASSIGNMENTS, ROOT
from tests.helpers import import_file

README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
BIN = os.path.dirname(sys.executable)


def make(target, timeout, **env):
    return subprocess.run(["make", target, *[f"{k}={v}" for k, v in env.items()]], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_every_make_target_the_readme_names_is_in_the_makefile():
    named = set(re.findall(r"`make ([\w-]+)", README)) | set(re.findall(r"^make ([\w-]+)", README, re.M))
    targets = set(re.findall(r"^([\w-]+):", MAKEFILE, re.M))
    assert named and named <= targets, named - targets
    assert len(re.findall(r"^release:", MAKEFILE, re.M)) == 1  # a second rule would silently replace the first


def test_make_release_writes_every_assignment_and_changes_nothing_committed():
    result = make("release", 300)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ASSIGNMENTS:
        assert f"wrote assignments/{name}/" in result.stdout
    drift = subprocess.run(["git", "status", "--porcelain", "--", "assignments", "solutions"], cwd=ROOT,
                           capture_output=True, text=True)
    assert drift.returncode != 0 or drift.stdout == "", drift.stdout  # outside a git checkout: nothing to compare


def test_make_check_release_passes_on_a_clean_checkout():
    result = make("check-release", 300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_gradescope_writes_an_autograder_zip(tmp_path):
    result = make("gradescope", 300, GRADESCOPE_ARGS=f"--out {tmp_path} --visibility *=after_published "
                                                     "resnet_paper_cifar10")
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(tmp_path / "resnet_paper_cifar10" / "autograder.zip") as z:
        names = z.namelist()
        assert {"setup.sh", "run_autograder", "solutions/resnet_paper_cifar10/checks.py"} <= set(names)
        assert set(json.loads(z.read("gradescope.json"))["visibility"].values()) == {"after_published"}


def test_make_data_writes_the_synthetic_set(tmp_path):
    result = make("data", 120, DATA_DIR=tmp_path / "synthetic")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "synthetic" / "cifar-10-batches-py" / "synthetic.json").is_file()
    assert (tmp_path / "synthetic" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()  # the digits beside it


def test_make_demo_grades_the_samples(demo):
    result = demo  # `make demo`, run once for the session (conftest.py)
    for name in ASSIGNMENTS:  # every assignment's samples, each in its own table
        assert f"== autograde {name}:" in result.stdout
    assert re.search(r"^reference\s+120/120\s+0\s+graded$", result.stdout, re.M)
    assert re.search(r"^reference\s+100/100\s+0\s+graded$", result.stdout, re.M)
    assert re.search(r"^release\s+0/120", result.stdout, re.M) and re.search(r"^release\s+0/100", result.stdout, re.M)
    assert re.search(r"^lr_fixed\s+95/100\s+1\s+graded$", result.stdout, re.M)  # the third assignment's table
    assert re.search(r"^resnet101_layers_of_50\s+85/100\s+2\s+graded$", result.stdout, re.M)  # and the fourth's
    for name in ASSIGNMENTS:  # the class report and the Gradescope zip of each, said where
        assert f"  out/demo/{name}/report.html\n" in result.stdout and (demo.graded / name / "report.html").is_file()
        assert f"  out/gradescope/{name}/autograder.zip\n" in result.stdout


def test_make_reference_run_trains_every_model_of_every_assignment(tmp_path):
    result = make("reference-run", 1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "falling" in result.stdout and "NOT falling" not in result.stdout
    for name in ("VGG-16", "ResNet-50 (layer4)", "plain-20", "ResNet-56", "adam lr 0.001 seed 1", "sgd lr 0.003 seed 0",
                 "resnet50 on cifar10", "resnet18 on mnist"):
        assert re.search(rf"^ +{re.escape(name)}: train loss .* \(falling\)", result.stdout, re.M), name


def test_make_bench_reports_the_split():
    result = make("bench", 1500, BENCH_COPIES=2, BENCH_JOBS=2)  # the README's second form: workers in parallel
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "wall time per submission" in result.stdout and "training step" in result.stdout
    for name in ASSIGNMENTS:  # every assignment, in the yardstick's unit
        assert re.search(rf"^  {name}: submission / step +\d+\.\d$", result.stdout, re.M), name


@pytest.mark.parametrize("script", ["autograde", "kit-release", "kit-synthetic-cifar10", "kit-demo"])
def test_console_scripts_answer_help(script):
    result = subprocess.run([os.path.join(BIN, script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_the_paper_recipe_benchmark_times_epochs_and_projects_182():
    result = subprocess.run([sys.executable, "bench/paper_recipe.py", "--device", "cpu", "--train", "250", "--epochs",
                             "2", "--batch", "50"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^epoch 2: \d+\.\d\d s, last loss", result.stdout, re.M)
    assert re.search(r"^seconds per epoch: \d+\.\d\d \(first epoch, with warm-up", result.stdout, re.M)
    assert re.search(r"^projected 182 epochs: \d+\.\d min$", result.stdout, re.M)
    assert "synthetic CIFAR-10-format set (250 train" in result.stdout


def test_the_recipe_augmentation_is_a_padded_crop_or_its_mirror():
    augment = import_file(ROOT / "bench" / "paper_recipe.py").augment
    x = torch.randn(16, 3, 32, 32)
    out = augment(x, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flipped = 0
    for i in range(16):
        windows = {(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if torch.equal(out[i], (lambda w: w.flip(2) if flip else w)(padded[i, :, dy:dy + 32, dx:dx + 32]))}
        assert windows, i
        flipped += all(flip for _, _, flip in windows)
    assert 0 < flipped < 16  # some images flipped, some not


def test_autograde_list_names_every_assignment_with_its_points():
    result = subprocess.run([os.path.join(BIN, "autograde"), "--list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^resnet50_cifar10: .*\(120 points\)$", result.stdout, re.M)
    assert re.search(r"^resnet_paper_cifar10: .*\(100 points\)$", result.stdout, re.M)
    assert re.search(r"^resnet34_optimizers: .*\(100 points\)$", result.stdout, re.M)
    assert re.search(r"^    5  make_optimizer\(\"sgd_m095\"\): torch.optim.SGD with momentum 0.95", result.stdout, re.M)
    assert re.search(r"^    5  Option A: no parameters", result.stdout, re.M)
    assert re.search(r"^resnet_family: .*\(100 points\)$", result.stdout, re.M)
    assert re.search(r"^   10  FLOPs at 224 x 224, counted by the grader", result.stdout, re.M)


def test_make_clean_removes_what_the_kit_wrote():
    (ROOT / "out" / "probe").mkdir(parents=True, exist_ok=True)
    assert make("clean", 60).returncode == 0
    assert not (ROOT / "out").exists()
