"""Benchmark: the paper's CIFAR-10 recipe on ResNet-20 (or deeper), timed per epoch and projected to 182 epochs.

    .venv/bin/python bench/paper_recipe.py [--device auto|cpu|cuda] [--train 50000] [--epochs 3] [--depth 20]
                                           [--batch 128] [--data-dir D]

SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr / 10 at 50 % and 75 % of 182 epochs; 4-pixel pad,
random crop and horizontal flip. Written to be fast on a GPU, as the fastest public CIFAR-10 trainers are: the whole
training set lives on the device as one normalised tensor, augmentation is batched tensor indexing (no DataLoader
workers), and on CUDA the net runs in channels_last memory format under bfloat16 autocast. Without --data-dir it
trains on the kit's synthetic set written at CIFAR-10's size (--train images), and says so: the times are what
matter, not the accuracy. The first epoch includes warm-up and is reported apart.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.data import describe, open_cifar10, write_synthetic_cifar10  # noqa: E402
from autograder.train import MEAN, STD  # noqa: E402
from tests.helpers import import_file  # noqa: E402

PAPER_EPOCHS = 182  # 64,000 iterations of batch 128 over 50,000 images


def on_device(root, train, device, limit=0):
    """(images, labels) of the whole split as normalised tensors on `device`."""
    data = open_cifar10(root, train=train)
    x = torch.tensor(data.data[:limit or None]).permute(0, 3, 1, 2).float().div(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x.to(device), torch.tensor(data.targets[:limit or None]).to(device)


def augment(x, generator):
    """The paper's augmentation on a batch at once: pad 4, a random 32x32 crop per image, a random flip."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = (torch.randint(0, 9, (2, n), generator=generator, device="cpu")).to(x.device)
    rows = (torch.arange(32, device=x.device) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(32, device=x.device) + dx[:, None])[:, None, None, :]
    crops = padded[torch.arange(n, device=x.device)[:, None, None, None],
                   torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, crops.flip(3), crops)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--train", type=int, default=50_000, help="training images of the synthetic set")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time (of the paper's 182)")
    parser.add_argument("--depth", type=int, default=20, choices=[20, 32, 44, 56, 110])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--data-dir", help="real CIFAR-10 (cifar-10-batches-py/ inside); default: synthetic")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = device == "cuda"
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data_dir
        if root is None:
            root = Path(scratch) / "synthetic"
            write_synthetic_cifar10(root, train=args.train, test=1000, seed=0)
        x, y = on_device(root, True, device, args.train if args.data_dir else 0)
        xt, yt = on_device(root, False, device)
        data = describe(root, where=False)
    reference = import_file(ROOT / "solutions" / "resnet_paper_cifar10" / "resnet_cifar.py")
    torch.manual_seed(0)
    model = getattr(reference, f"resnet{args.depth}")().to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = (len(x) + args.batch - 1) // args.batch
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, [PAPER_EPOCHS // 2 * steps_per_epoch, PAPER_EPOCHS * 3 // 4 * steps_per_epoch], 0.1)
    generator = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    times = []
    print(f"ResNet-{args.depth} on {device}, {len(x)} training images of {data}, batch {args.batch}, "
          f"{'channels_last + bfloat16 autocast' if cuda else 'float32'}")
    for epoch in range(1, args.epochs + 1):
        model.train()
        if cuda:
            torch.cuda.synchronize()
        started = time.monotonic()
        order = torch.randperm(len(x), generator=generator).to(device)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch:(i + 1) * args.batch]
            images = augment(x[idx], generator)
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = F.cross_entropy(model(images), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.monotonic() - started)
        print(f"epoch {epoch}: {times[-1]:.2f} s, last loss {loss.item():.3f}", flush=True)
    model.eval()
    with torch.no_grad(), autocast:
        correct = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                      for i in range(0, len(xt), 1000))
    steady = times[1:] or times
    per_epoch = sum(steady) / len(steady)
    print(f"seconds per epoch: {per_epoch:.2f} (first epoch, with warm-up: {times[0]:.2f})")
    print(f"projected {PAPER_EPOCHS} epochs: {per_epoch * PAPER_EPOCHS / 60:.1f} min")
    print(f"test accuracy after {args.epochs} epoch(s): {100 * correct / len(xt):.1f} % on {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
