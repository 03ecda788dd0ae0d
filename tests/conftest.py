import shutil
import subprocess

import pytest

from autograder.assignments import ASSIGNMENTS, ROOT
from autograder.data import write_digits_mnist, write_synthetic_cifar10


@pytest.fixture(scope="session")
def assignment():
    return ASSIGNMENTS["resnet50_cifar10"]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, train=2000, test=500, seed=1)
    write_digits_mnist(root, train=600, test=200, seed=1)  # beside it, as the family's notebook wants both
    return root


@pytest.fixture(scope="session")
def smallest_budget(synthetic_root, tmp_path_factory):
    """Settings for executing an assignment notebook as fast as it goes, one epoch on a few images: they replace
    the values of the notebook's settings cell (autograder.notebooks.with_settings)."""
    out = tmp_path_factory.mktemp("outputs")
    return {
        "DATA_DIR": str(synthetic_root), "DOWNLOAD": False, "EPOCHS": 1, "TRAIN_SUBSET": 64, "TEST_SUBSET": 32,
        "BATCH_SIZE": 32, "OUTPUT_DIR": str(out),
    }


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """`make demo`, run once per session: its output for the demo's own test, and a copy of out/demo/ (every
    sample graded; `make clean` may remove the original) for each assignment's exact-score tests: grading the
    samples again per test file would double the longest part of CI."""
    result = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result.graded = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(ROOT / "out" / "demo", result.graded)
    return result
