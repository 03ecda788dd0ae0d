import os

import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.data import write_synthetic_cifar10


@pytest.fixture(scope="session")
def assignment():
    return ASSIGNMENTS["resnet50_cifar10"]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic_cifar10(root, train=2000, test=500, seed=1)
    return root


@pytest.fixture(scope="session")
def smallest_budget(synthetic_root, tmp_path_factory):
    """Environment for executing an assignment notebook as fast as it goes: one epoch on a few images."""
    out = tmp_path_factory.mktemp("outputs")
    return {
        "KIT_DATA_DIR": str(synthetic_root), "KIT_DOWNLOAD": "0", "KIT_EPOCHS": "1", "KIT_TRAIN_SUBSET": "64",
        "KIT_TEST_SUBSET": "32", "KIT_BATCH_SIZE": "32", "KIT_OUTPUT_DIR": str(out),
        # the kernel inherits our environment: keep it on two threads like the machine
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
