"""The synthetic set is CIFAR-10's real on-disk format, read by torchvision's reader, and learnable (not trivially)."""
import math
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
from autograder.train import Budget, outcome, task_data, training_run


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


def test_the_one_batch_run_reports_the_lowest_finite_loss_on_its_batch(synthetic_root):
    """A deep net's cheaper task: steps on one fixed batch and the lowest loss reached, never a NaN one; no
    held-out accuracy, which a few steps would leave at chance."""
    budget = Budget(steps=6, one_batch=True)
    data = task_data(synthetic_root, budget)
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 2))
    run = training_run(small, data, budget, "cpu")
    assert "accuracy" not in run and 0 < run["fit"] < run["first_loss"]
    assert outcome(run) == f"lowest loss {run['fit']:.3f} on one fixed batch of 32"
    held_out = training_run(small, data, Budget(steps=6), "cpu")
    assert "fit" not in held_out and outcome(held_out) == f"{held_out['accuracy']:.0%} held-out accuracy"
    broken = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    with torch.no_grad():
        broken[1].bias.fill_(float("nan"))
    assert training_run(broken, data, budget, "cpu")["fit"] == math.inf


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


# The MNIST-format set: real handwriting (scikit-learn's UCI digits) in MNIST's IDX files, read by torchvision's MNIST.

@pytest.fixture(scope="module")
def digits_mnist(tmp_path_factory):
    """(root, md5 table from writing): a small MNIST-format set, the table as the grader would hold it."""
    from autograder.data import write_digits_mnist_with_sums

    root = tmp_path_factory.mktemp("mnist")
    return root, write_digits_mnist_with_sums(root, train=3000, test=600, seed=0)[1]


def test_mnist_files_have_the_real_idx_headers_and_sizes(digits_mnist):
    import struct

    from autograder.data import MNIST_FILES, MNIST_FOLDER

    root, sums = digits_mnist
    raw = root / MNIST_FOLDER / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(sums) == sorted(n for f in MNIST_FILES.values() for n in f)
    for train, count in [(True, 3000), (False, 600)]:
        images, labels = (raw / name for name in MNIST_FILES[train])
        assert images.name == ("train" if train else "t10k") + "-images-idx3-ubyte"
        head = images.read_bytes()[:16]
        assert struct.unpack(">IIII", head) == (0x00000803, count, 28, 28)
        assert images.stat().st_size == 16 + count * 28 * 28
        assert struct.unpack(">II", labels.read_bytes()[:8]) == (0x00000801, count)
        assert labels.stat().st_size == 8 + count


def test_mnist_loads_through_torchvision_mnist_unchanged(digits_mnist):
    from torchvision.datasets import MNIST

    from autograder.data import open_mnist

    root, _ = digits_mnist
    for train, count in [(True, 3000), (False, 600)]:
        data = MNIST(root, train=train, download=False)  # torchvision's own class, no subclass, no checksum table
        assert type(data) is MNIST and type(open_mnist(root, train)) is MNIST
        assert data.data.shape == (count, 28, 28) and data.data.dtype == torch.uint8
        assert np.bincount(data.targets.numpy(), minlength=10).tolist() == [count // 10] * 10
        assert (data.data == 0).float().mean() > 0.6 and data.data.max() == 255  # black canvas, white strokes
    image, label = open_mnist(root, False, transform=transforms.ToTensor())[0]
    assert image.shape == (1, 28, 28) and 0 <= label < 10


def _mnist_arrays(root, train):
    from autograder.data import open_mnist

    data = open_mnist(root, train)
    return data.data.flatten(1).float() / 255, data.targets


def test_mnist_images_are_real_digits(digits_mnist):
    """Real handwriting: 1-nearest-neighbour on raw pixels, fit on the train split, reads the test split (made from
    other source images) well above the 10 % of chance; with the train labels shuffled it stays near chance."""
    root, _ = digits_mnist
    (x, y), (xt, yt) = _mnist_arrays(root, True), _mnist_arrays(root, False)
    nearest = torch.cdist(xt, x).argmin(dim=1)
    accuracy = (y[nearest] == yt).float().mean().item()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    chance = (shuffled[nearest] == yt).float().mean().item()
    assert accuracy >= 0.8, f"held-out accuracy {accuracy:.2f}"
    assert chance < 0.2, f"accuracy with shuffled labels {chance:.2f}"


def test_mnist_test_images_come_from_held_out_source_digits(digits_mnist):
    """No leakage: the files hold exactly digits_mnist_arrays' images, and its test images are made from source
    digits that no training image is made from; labels are the sources' labels."""
    from sklearn.datasets import load_digits
    from torchvision.datasets import MNIST

    from autograder.data import digits_mnist_arrays, digits_source_split

    root, _ = digits_mnist
    (x, y, src), (xt, yt, src_t) = digits_mnist_arrays(3000, 600, seed=0)
    for train, images, labels in [(True, x, y), (False, xt, yt)]:
        data = MNIST(root, train=train)
        assert np.array_equal(data.data.numpy(), images) and np.array_equal(data.targets.numpy(), labels)
    assert not set(src.tolist()) & set(src_t.tolist())
    pool, pool_t = digits_source_split(seed=0)
    assert set(src.tolist()) <= set(pool.tolist()) and set(src_t.tolist()) <= set(pool_t.tolist())
    assert not set(pool.tolist()) & set(pool_t.tolist()) and len(pool) + len(pool_t) == 1797
    targets = load_digits().target
    assert np.array_equal(targets[src], y) and np.array_equal(targets[src_t], yt)
    assert len(set(src_t.tolist())) > 300  # the test split draws on nearly all of its ~360 source digits


def test_mnist_is_deterministic_for_a_seed(tmp_path):
    from autograder.data import MNIST_FOLDER, digits_source_split, write_digits_mnist_with_sums

    sums = [write_digits_mnist_with_sums(tmp_path / name, train=200, test=50, seed=seed)[1]
            for name, seed in [("a", 5), ("b", 5), ("c", 6)]]
    assert sums[0] == sums[1] and all(sums[0][name] != sums[2][name] for name in sums[0])
    for name in sums[0]:
        assert ((tmp_path / "a" / MNIST_FOLDER / "raw" / name).read_bytes()
                == (tmp_path / "b" / MNIST_FOLDER / "raw" / name).read_bytes())
    assert not np.array_equal(digits_source_split(5)[1], digits_source_split(6)[1])


def test_a_changed_mnist_file_fails_the_checksum(digits_mnist, tmp_path):
    """The grader's table from writing the set refuses a changed file, even with the manifest beside it rewritten
    to match; only open_mnist without a table (trusting that manifest) would read it."""
    import hashlib
    import json
    import shutil

    from autograder.data import MNIST_FOLDER, MNIST_MANIFEST, open_mnist, verify_mnist

    root, sums = digits_mnist
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    verify_mnist(copy, sums)
    images = copy / MNIST_FOLDER / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-1] + b"\xff")
    with pytest.raises(ValueError, match="does not match"):
        verify_mnist(copy, sums)
    with pytest.raises(ValueError, match="does not match"):
        open_mnist(copy, train=True)  # the manifest's table catches an accident
    manifest = json.loads((copy / MNIST_FOLDER / MNIST_MANIFEST).read_text())
    manifest["checksums"][images.name] = hashlib.md5(images.read_bytes()).hexdigest()
    (copy / MNIST_FOLDER / MNIST_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="does not match"):
        open_mnist(copy, train=True, checksums=sums)  # but only the grader's own table catches tampering
    assert len(open_mnist(copy, train=True)) == 3000
    with pytest.raises(ValueError, match="no checksums"):
        verify_mnist(copy, {})


def test_a_planted_processed_mnist_file_is_refused(digits_mnist, tmp_path):
    """torchvision's MNIST loads processed/training.pt and test.pt, when both exist, instead of the raw files."""
    import shutil

    from autograder.data import MNIST_FOLDER, open_mnist

    root, sums = digits_mnist
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    processed = copy / MNIST_FOLDER / "processed"
    processed.mkdir()
    fake = (torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(5, dtype=torch.long))
    for name in ("training.pt", "test.pt"):
        torch.save(fake, processed / name)
    from torchvision.datasets import MNIST

    assert len(MNIST(copy, train=True)) == 5  # what an unchecked reader would train on
    with pytest.raises(ValueError, match="instead of the checked raw files"):
        open_mnist(copy, train=True, checksums=sums)


def test_describe_mnist_says_it_is_built_from_the_uci_digits(digits_mnist, tmp_path):
    from autograder.data import describe_mnist, is_digits_mnist, open_mnist

    root, _ = digits_mnist
    line = describe_mnist(root)
    assert is_digits_mnist(root) and "UCI digits from scikit-learn" in line and "28×28" in line
    assert line.endswith(f"at {root} (3000 train / 600 test images, seed 0)")
    assert str(root) not in describe_mnist(root, where=False)
    assert not is_digits_mnist(tmp_path) and describe_mnist(tmp_path) == f"MNIST at {tmp_path}"
    with pytest.raises(RuntimeError, match="not found"):
        open_mnist(tmp_path, train=False)  # no set and no download: torchvision's own message


def test_the_mnist_command_line(tmp_path, capsys):
    from autograder.data import describe_mnist, is_digits_mnist, is_synthetic, main

    main([str(tmp_path), "--mnist", "--train", "100", "--test", "20", "--seed", "3"])
    assert is_digits_mnist(tmp_path) and not is_synthetic(tmp_path)
    assert describe_mnist(tmp_path) in capsys.readouterr().out
    assert describe_mnist(tmp_path).endswith("(100 train / 20 test images, seed 3)")


def test_the_grader_reads_the_digits_task_and_refuses_a_rewritten_file(digits_mnist, tmp_path):
    """The training run's MNIST path: with no --data-dir a fresh set; with the kit's set as --data-dir the grader
    writes it again for its checksums, so a label file rewritten beside a rewritten manifest is refused."""
    import dataclasses
    import hashlib
    import json
    import shutil

    from autograder.data import MNIST_FOLDER, MNIST_MANIFEST
    from autograder.train import BUDGETS, DataError, resolve_data, task_data

    budget = dataclasses.replace(BUDGETS["cpu"], classes=(3, 5, 8), held_out=100)
    root, checksums = resolve_data(None, tmp_path / "cache", "mnist")
    task = task_data(root, budget, checksums, "mnist")
    assert task.x.shape[1:] == (1, 28, 28) and set(task.y.tolist()) == {0, 1, 2} and len(task.xt) == 100
    assert task.synthetic and "handwritten digits" in task.description and str(tmp_path) not in task.description
    assert abs(task.x.mean().item()) < 0.5  # normalised with MNIST's own mean and std

    copy = tmp_path / "copy"
    shutil.copytree(digits_mnist[0], copy)
    labels = copy / MNIST_FOLDER / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8:] = bytes(len(raw) - 8)  # every label 0
    labels.write_bytes(bytes(raw))
    manifest = json.loads((copy / MNIST_FOLDER / MNIST_MANIFEST).read_text())
    manifest["checksums"]["train-labels-idx1-ubyte"] = hashlib.md5(bytes(raw)).hexdigest()
    (copy / MNIST_FOLDER / MNIST_MANIFEST).write_text(json.dumps(manifest))
    root, checksums = resolve_data(copy, tmp_path / "cache", "mnist")
    with pytest.raises(DataError, match="does not match"):
        task_data(root, budget, checksums, "mnist")
    with pytest.raises(DataError, match="no MNIST there"):
        resolve_data(tmp_path / "empty", tmp_path / "cache", "mnist")
