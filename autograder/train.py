"""The short training run: one fixed task, seeds and budget per device, the same for the reference and students.
An assignment may change the budget and train on MNIST-format digits instead (its checks file's TRAINING_BUDGET
and TRAINING_DATA); what follows is the default.

On CPU the budget must fit in seconds, so the task is two classes (0 and 4: horizontal stripes vs disks on the
synthetic set, airplane vs deer on CIFAR-10) for 60 Adam steps; there the reference goes from loss 1.31 to 0.16 and
94 % held-out accuracy (measured on the synthetic set), while a model that cannot learn stays near 50 %. Held-out
accuracy uses batch statistics in batch norm, since 60 steps leave running statistics far behind.
"""
import copy
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import (FOLDER, MANIFEST, MNIST_FILES, MNIST_FOLDER, MNIST_MANIFEST, describe, describe_mnist,
                   is_digits_mnist, is_synthetic, open_cifar10, open_mnist, write_digits_mnist_with_sums,
                   write_synthetic_cifar10_with_sums)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
NORMALISE = {"cifar10": (MEAN, STD), "mnist": ((0.1307,), (0.3081,))}  # each set's own mean and std
DATASETS = tuple(NORMALISE)  # what a checks file's TRAINING_DATA may name


@dataclass(frozen=True)
class Budget:
    classes: tuple = (0, 4)
    steps: int = 60
    batch: int = 32
    lr: float = 1e-3
    held_out: int = 400
    seed: int = 0
    one_batch: bool = False  # train on one fixed batch and report the lowest loss on it, no held-out accuracy


EVAL_CHUNK = 200  # held-out images per forward pass
BUDGETS = {"cpu": Budget(), "cuda": Budget(classes=(0, 1, 4, 6), steps=300, batch=64, held_out=1000)}


class DataError(ValueError):
    """The data the instructor named cannot be used; the message says what was expected."""


@dataclass
class TaskData:
    """The training task's tensors, read once by the grading process before any child runs: no student's child
    can change them afterwards, whatever it writes."""
    x: torch.Tensor
    y: torch.Tensor
    xt: torch.Tensor
    yt: torch.Tensor
    description: str
    synthetic: bool


def resolve_data(data_dir, cache_dir, dataset="cifar10"):
    """(root, md5 table or None): the data set at `data_dir` (torchvision checks real CIFAR-10's md5 sums; it checks
    none for real MNIST, which is the instructor's own folder), or, with no `data_dir`, the kit's stand-in written
    afresh under `cache_dir` with the checksums computed while writing it (synthetic CIFAR-10; MNIST-format digits
    from scikit-learn's)."""
    if dataset == "mnist":
        return _resolve_mnist(data_dir, cache_dir)
    if data_dir:
        if not (Path(data_dir) / FOLDER / "data_batch_1").is_file():
            raise DataError(f"--data-dir {data_dir}: no CIFAR-10 there (expected {FOLDER}/data_batch_1 ... "
                            "data_batch_5 and test_batch inside it, as torchvision downloads them)")
        if is_synthetic(data_dir):  # the kit's own set: its checksums come from writing it again, not its manifest
            manifest = json.loads((Path(data_dir) / FOLDER / MANIFEST).read_text())
            params = {k: int(manifest[k]) for k in ("train", "test", "seed")}
            with tempfile.TemporaryDirectory() as again:
                return Path(data_dir), write_synthetic_cifar10_with_sums(again, **params)[1]
        return Path(data_dir), None
    synthetic = Path(cache_dir) / "synthetic-cifar10"
    shutil.rmtree(synthetic, ignore_errors=True)
    return synthetic, write_synthetic_cifar10_with_sums(synthetic)[1]


def _resolve_mnist(data_dir, cache_dir):
    if data_dir:
        raw = Path(data_dir) / MNIST_FOLDER / "raw"
        if not all((raw / name).is_file() for pair in MNIST_FILES.values() for name in pair):
            raise DataError(f"--data-dir {data_dir}: no MNIST there (expected {MNIST_FOLDER}/raw/"
                            f"{MNIST_FILES[True][0]} and the other three files inside it, as torchvision "
                            "downloads them)")
        if is_digits_mnist(data_dir):  # the kit's own set: checksums from writing it again, not from its manifest
            manifest = json.loads((Path(data_dir) / MNIST_FOLDER / MNIST_MANIFEST).read_text())
            params = {k: int(manifest[k]) for k in ("train", "test", "seed")}
            with tempfile.TemporaryDirectory() as again:
                return Path(data_dir), write_digits_mnist_with_sums(again, **params)[1]
        return Path(data_dir), None
    digits = Path(cache_dir) / "digits-mnist"
    shutil.rmtree(digits, ignore_errors=True)
    return digits, write_digits_mnist_with_sums(digits)[1]


def task_tensors(root, budget: Budget, train: bool, checksums=None, dataset="cifar10"):
    """(images, labels) of the budget's classes, normalised, labels renumbered 0..k-1."""
    if dataset == "mnist":
        try:
            data = open_mnist(root, train=train, checksums=checksums)
        except ValueError as exc:  # a file that is not what the grader wrote (verify_mnist)
            raise DataError(str(exc)) from None
        x, y = data.data.unsqueeze(1).float().div(255), data.targets.clone()
    else:
        data = open_cifar10(root, train=train, checksums=checksums)
        x, y = torch.tensor(data.data).permute(0, 3, 1, 2).float().div(255), torch.tensor(data.targets)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORMALISE[dataset])
    keep = torch.isin(y, torch.tensor(budget.classes))
    return (x[keep] - mean) / std, torch.searchsorted(torch.tensor(budget.classes), y[keep])


def task_data(root, budget: Budget, checksums=None, dataset="cifar10") -> TaskData:
    x, y = task_tensors(root, budget, True, checksums, dataset)
    xt, yt = task_tensors(root, budget, False, checksums, dataset)
    said, stand_in = (describe_mnist, is_digits_mnist) if dataset == "mnist" else (describe, is_synthetic)
    return TaskData(x, y, xt[:budget.held_out], yt[:budget.held_out], said(root, where=False),
                    checksums is not None or stand_in(root))


def gradient_gaps(model) -> list:
    """Trainable parameters that no gradient path reaches from the loss (a detach, say), read right after a backward
    from grads set to None. Not "zero gradient": a conv bias just before train-mode batch norm gets an all-but-zero
    gradient by design."""
    return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]


def training_run(model, data: TaskData, budget: Budget, device: str) -> dict:
    """Train a copy of `model` on the task; losses, held-out accuracy (or the lowest loss on the one fixed batch)
    and gradient gaps, as plain data."""
    model = copy.deepcopy(model).to(device)
    x, y, xt, yt = data.x, data.y, data.xt, data.yt
    torch.manual_seed(budget.seed)
    generator = torch.Generator().manual_seed(budget.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr)
    losses, gaps = [], None
    model.train()

    def draw():
        idx = torch.randint(0, len(x), (budget.batch,), generator=generator)
        return x[idx].to(device), y[idx].to(device)

    fixed = draw() if budget.one_batch else None
    for _ in range(budget.steps):
        images, labels = fixed or draw()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if gaps is None:  # from the first step's backward, not a pass of its own (it cost a training step's time)
            gaps = gradient_gaps(model)
        optimizer.step()
        losses.append(loss.item())
    window = max(budget.steps // 6, 1)
    run = {
        "first_loss": sum(losses[:window]) / window, "last_loss": sum(losses[-window:]) / window,
        "chance": 1 / len(budget.classes), "gradient_gaps": gaps or [], "device": device, "budget": asdict(budget),
        "data": data.description, "synthetic": data.synthetic,
    }
    if budget.one_batch:  # the loss after the last step too; a non-finite loss never counts as the lowest
        with torch.no_grad():
            losses.append(F.cross_entropy(model(fixed[0]), fixed[1]).item())
        return {**run, "fit": min((v for v in losses if math.isfinite(v)), default=math.inf)}
    held_out = len(xt)
    correct = 0
    with torch.no_grad():  # batch statistics (train-mode batch norm) on held-out batches of 200
        for i in range(0, held_out, EVAL_CHUNK):
            logits = model(xt[i:i + EVAL_CHUNK].to(device))
            correct += (logits.argmax(dim=1).cpu() == yt[i:i + EVAL_CHUNK]).sum().item()
    return {**run, "accuracy": correct / held_out, "held_out": held_out}


def outcome(run: dict) -> str:
    """What a training run reached, in words: its held-out accuracy, or its lowest loss on the one fixed batch."""
    if "fit" in run:
        return f"lowest loss {run['fit']:.3f} on one fixed batch of {run['budget']['batch']}"
    return f"{run['accuracy']:.0%} held-out accuracy"
