"""The synthetic set is CIFAR-10's real on-disk format, read by torchvision's reader, and learnable (not trivially)."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10

from autograder.data import CLASSES, FOLDER, TEST_FILE, TRAIN_FILES, describe, open_cifar10


def test_files_are_python2_pickles_like_the_real_batches(synthetic_root):
    folder = synthetic_root / FOLDER
    for name in TRAIN_FILES + [TEST_FILE]:
        with open(folder / name, "rb") as f:
            raw = pickle.load(f, encoding="bytes")  # the recipe on the CIFAR-10 page
        assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert raw[b"data"].dtype == np.uint8 and raw[b"data"].shape[1] == 3072
        assert len(raw[b"labels"]) == len(raw[b"data"]) == len(raw[b"filenames"])
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")  # how torchvision reads it
    assert meta["label_names"] == CLASSES


def test_loads_through_torchvision_cifar10(synthetic_root):
    train = open_cifar10(synthetic_root, train=True)
    test = open_cifar10(synthetic_root, train=False, transform=transforms.ToTensor())
    assert isinstance(train, CIFAR10) and isinstance(test, CIFAR10)
    assert (len(train), len(test)) == (2000, 500)
    assert train.data.shape == (2000, 32, 32, 3) and train.classes == CLASSES
    assert np.bincount(train.targets).tolist() == [200] * 10
    image, label = test[0]
    assert image.shape == (3, 32, 32) and 0 <= label < 10
    assert "synthetic" in describe(synthetic_root)


def test_a_changed_file_fails_the_checksum(synthetic_root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root, copy)
    batch = copy / FOLDER / TRAIN_FILES[0]
    batch.write_bytes(batch.read_bytes()[:-1] + b"\x00")
    with pytest.raises(RuntimeError, match="corrupted"):
        open_cifar10(copy, train=True)


def test_without_the_manifest_it_is_plain_cifar10(tmp_path):
    with pytest.raises(RuntimeError, match="not found"):
        open_cifar10(tmp_path, train=False, download=False)
    assert describe(tmp_path) == f"CIFAR-10 at {tmp_path}"


def _arrays(root, train):
    data = open_cifar10(root, train=train)
    return torch.tensor(data.data).permute(0, 3, 1, 2).float() / 255, torch.tensor(data.targets)


def test_colour_alone_does_not_tell_the_class(synthetic_root):
    """Not trivial: a nearest-centroid classifier on each image's mean colour stays near chance."""
    (x, y), (xt, yt) = _arrays(synthetic_root, True), _arrays(synthetic_root, False)
    centroids = torch.stack([x[y == c].mean(dim=(0, 2, 3)) for c in range(10)])
    guess = torch.cdist(xt.mean(dim=(2, 3)), centroids).argmin(dim=1)
    assert (guess == yt).float().mean() < 0.2


def test_a_small_cnn_learns_it_above_chance(synthetic_root):
    """Learnable quickly: a three-layer CNN, 150 SGD steps, well above the 10 % of chance on held-out images."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 10),
    )
    to_tensor = transforms.ToTensor()
    loader = DataLoader(open_cifar10(synthetic_root, True, to_tensor), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses, steps = [], 0
    while steps < 150:
        for images, labels in loader:
            loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            steps += 1
            if steps == 150:
                break
    net.eval()
    images, labels = next(iter(DataLoader(open_cifar10(synthetic_root, False, to_tensor), batch_size=500)))
    with torch.no_grad():
        accuracy = (net(images).argmax(dim=1) == labels).float().mean().item()
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    assert accuracy > 0.4, f"held-out accuracy {accuracy:.2f}"


class _Planted:
    """A pickle that, once unpickled, leaves a file behind: what a child could plant in an unconfined data cache."""
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_the_grader_never_unpickles_a_batch_rewritten_with_its_md5_table(synthetic_root, tmp_path):
    """A child that rewrites a batch and the manifest's md5 table beside it still fails the grader's check: the
    grader holds the checksums from writing the set itself, and checks them before torchvision unpickles."""
    import hashlib
    import json
    import shutil

    from autograder.data import MANIFEST
    from autograder.train import BUDGETS, resolve_data, task_data

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_root, copy)
    _Planted.marker = tmp_path / "planted"
    batch = copy / FOLDER / TRAIN_FILES[0]
    batch.write_bytes(pickle.dumps(_Planted(), protocol=2))
    manifest = json.loads((copy / FOLDER / MANIFEST).read_text())
    manifest["checksums"]["train_list"][0][1] = hashlib.md5(batch.read_bytes()).hexdigest()
    (copy / FOLDER / MANIFEST).write_text(json.dumps(manifest))
    root, checksums = resolve_data(copy, tmp_path / "cache")
    with pytest.raises(RuntimeError, match="corrupted"):
        task_data(root, BUDGETS["cpu"], checksums)
    assert not _Planted.marker.exists()
    with pytest.raises(TypeError):  # what trusting the manifest beside the data does: unpickle the plant
        open_cifar10(copy, train=True)
    assert _Planted.marker.exists()
