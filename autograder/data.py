"""CIFAR-10 for the kit: torchvision's own reader, on the real set or on a synthetic set in the real on-disk format.

The synthetic set lets tests and demos run the real loading code offline. Its ten classes are drawn patterns
(stripes, checkers, disks, rings, squares, crosses) at random positions, sizes and colours with pixel noise: colour
says nothing about the class, so a model must learn spatial features — a small CNN does so in a few hundred steps.
"""
import argparse
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
MANIFEST = "synthetic.json"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASSES = [
    "horizontal stripes", "vertical stripes", "diagonal stripes", "checkerboard", "disk",
    "ring", "square", "square outline", "plus", "cross",
]


def is_synthetic(root) -> bool:
    return (Path(root) / FOLDER / MANIFEST).exists()


def open_cifar10(root, train, transform=None, download=False, checksums=None):
    """torchvision's CIFAR10 at `root`. On the kit's synthetic set the same reader runs with the set's own md5
    table, since the real set's checksums cannot match made-up files: `checksums` when the caller holds them (the
    grader: it wrote the set itself), else the manifest's beside the data."""
    from torchvision.datasets import CIFAR10

    if checksums is None and is_synthetic(root):
        checksums = json.loads((Path(root) / FOLDER / MANIFEST).read_text())["checksums"]
    if checksums is not None:
        reader = type("SyntheticCIFAR10", (CIFAR10,), checksums)
        return reader(root, train=train, transform=transform, download=False)
    return CIFAR10(root, train=train, transform=transform, download=download)


def describe(root, where=True) -> str:
    """One line saying which data lives at `root`, for every log, plot and report that uses it (without the path
    when `where` is false: what a student reads never names the grading machine's folders)."""
    at = f" at {root}" if where else ""
    if not is_synthetic(root):
        return f"CIFAR-10{at}"
    m = json.loads((Path(root) / FOLDER / MANIFEST).read_text())
    return (f"synthetic CIFAR-10-format set{at} ({int(m['train'])} train / {int(m['test'])} test images, "
            f"seed {int(m['seed'])})")


def _pattern(label, rng, size=32):
    """A float mask in [0, 1] of class `label`, at a random place, scale and frequency."""
    t = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(t, t, indexing="ij")
    y, x = y - rng.uniform(-0.3, 0.3), x - rng.uniform(-0.3, 0.3)
    s = rng.uniform(0.35, 0.7)  # shape half-width
    w = rng.uniform(0.08, 0.16)  # line half-width
    f = rng.uniform(2.0, 3.5)  # stripes per unit
    phase = rng.uniform(0, 2 * np.pi)
    wave = lambda u: np.sin(np.pi * f * u + phase) > 0  # noqa: E731
    r, box = np.hypot(x, y), np.maximum(abs(x), abs(y))
    u, v = (x + y) / np.sqrt(2), (x - y) / np.sqrt(2)
    masks = [
        wave(y), wave(x), wave(u), wave(x) ^ wave(y + 0.5 / f),
        r < s, abs(r - s) < w, box < s, abs(box - s) < w,
        ((abs(x) < w) & (abs(y) < s)) | ((abs(y) < w) & (abs(x) < s)),
        ((abs(u) < w) & (abs(v) < s)) | ((abs(v) < w) & (abs(u) < s)),
    ]
    return masks[label].astype(np.float32)


def synthetic_images(labels, rng, noise=0.12):
    """(N, 3072) uint8 rows in CIFAR-10's layout (the 1024 red values, then green, then blue), one per label."""
    rows = np.empty((len(labels), 3 * 32 * 32), dtype=np.uint8)
    for i, label in enumerate(labels):
        mask = _pattern(int(label), rng)[None]
        bg = rng.uniform(0, 1, (3, 1, 1))
        fg = rng.uniform(0, 1, (3, 1, 1))
        while abs(fg - bg).mean() < 0.3:  # keep the pattern visible
            fg = rng.uniform(0, 1, (3, 1, 1))
        image = bg * (1 - mask) + fg * mask + rng.normal(0, noise, (3, 32, 32))
        rows[i] = (np.clip(image, 0, 1) * 255).round().astype(np.uint8).reshape(-1)
    return rows


class _Py2Pickler(pickle._Pickler):
    """Pickles str and bytes as Python 2 byte strings, as the real batches (Python 2 pickles) do: read with
    encoding="latin1" (torchvision) keys are str, with encoding="bytes" (the CIFAR page's recipe) b"data"."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_string(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def _dump(obj, path: Path) -> str:
    with path.open("wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_synthetic_cifar10(root, train=5000, test=1000, seed=0) -> Path:
    """Write a synthetic set to `root`/cifar-10-batches-py in CIFAR-10's format; returns that folder."""
    return write_synthetic_cifar10_with_sums(root, train, test, seed)[0]


def write_synthetic_cifar10_with_sums(root, train=5000, test=1000, seed=0):
    """(folder, md5 table) of a synthetic set written to `root`: the table as computed while writing, for a
    caller that must not trust the manifest beside the data."""
    if train % len(TRAIN_FILES):
        raise ValueError(f"train={train}: must split evenly into {len(TRAIN_FILES)} batches")
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_batch = train // len(TRAIN_FILES)
    sums = {"train_list": [], "test_list": []}
    for name, count, key in [(f, per_batch, "train_list") for f in TRAIN_FILES] + [(TEST_FILE, test, "test_list")]:
        labels = rng.permutation(np.arange(count) % len(CLASSES))
        batch = {
            "batch_label": f"synthetic {name} (not CIFAR-10)",
            "labels": [int(label) for label in labels],
            "data": synthetic_images(labels, rng),
            "filenames": [f"synthetic_{name}_{i:05d}.png" for i in range(count)],
        }
        sums[key].append([name, _dump(batch, folder / name)])
    meta = {"num_cases_per_batch": per_batch, "label_names": CLASSES, "num_vis": 3 * 32 * 32}
    sums["meta"] = {"filename": META_FILE, "key": "label_names", "md5": _dump(meta, folder / META_FILE)}
    manifest = {"generator": "autograder.data", "seed": seed, "train": train, "test": test, "checksums": sums}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder, sums


def ensure_synthetic_cifar10(root, **kwargs) -> Path:
    """The synthetic set at `root`, written first if it is not there (same arguments, same files)."""
    if not (Path(root) / FOLDER / MANIFEST).exists():
        write_synthetic_cifar10(root, **kwargs)
    return Path(root)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic set in CIFAR-10's on-disk format.")
    parser.add_argument("root", help="data dir; files go to ROOT/cifar-10-batches-py")
    parser.add_argument("--train", type=int, default=5000, help="training images (a multiple of 5)")
    parser.add_argument("--test", type=int, default=1000, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = write_synthetic_cifar10(args.root, args.train, args.test, args.seed)
    print(f"wrote {describe(args.root)} to {folder}")


if __name__ == "__main__":
    main()
