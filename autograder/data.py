"""CIFAR-10 and MNIST for the kit: torchvision's own readers, on the real sets or on offline sets in the real formats.

The synthetic CIFAR-10 set lets tests and demos run the real loading code offline. Its ten classes are drawn patterns
(stripes, checkers, disks, rings, squares, crosses) at random positions, sizes and colours with pixel noise: colour
says nothing about the class, so a model must learn spatial features — a small CNN does so in a few hundred steps.

The MNIST-format set (ROOT/MNIST/raw, the four uncompressed IDX files torchvision's MNIST reads) holds real handwriting:
the 1,797 UCI handwritten digits that scikit-learn ships in its wheel (8×8, values 0..16), split into train and test
sources first (so no test image is a variant of a training source), upscaled to 20×20 in a 28×28 canvas as MNIST
is, and augmented (rotation, scale, shift, stroke width, contrast) up to the requested counts. It is not MNIST, and
`describe_mnist` says so.
"""
import argparse
import functools
import hashlib
import json
import pickle
import struct
import time
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


MNIST_FOLDER = "MNIST"
MNIST_MANIFEST = "digits.json"
MNIST_FILES = {  # (images, labels) per split, uncompressed, as torchvision's MNIST reads them from ROOT/MNIST/raw
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_LEGACY = ("training.pt", "test.pt")  # ROOT/MNIST/processed: torchvision prefers these to the raw files
DIGITS_SOURCE = "UCI handwritten digits from scikit-learn (load_digits), upscaled to 28x28 and augmented"
DIGITS_TEST_SHARE = 0.2  # of each class's source images, held out for the test split


def _mnist_folder(root) -> Path:
    return Path(root) / MNIST_FOLDER


def is_digits_mnist(root) -> bool:
    return (_mnist_folder(root) / MNIST_MANIFEST).exists()


@functools.lru_cache(maxsize=1)
def _uci_digits():
    """(images (1797, 8, 8) float32 in [0, 1], labels (1797,) int64): the digits bundled in scikit-learn's wheel.
    Read once (one write asks for them from several places), and read-only, since every caller shares them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def digits_source_split(seed=0):
    """(train sources, test sources): indices into scikit-learn's load_digits(), disjoint, stratified by class
    (DIGITS_TEST_SHARE of each class held out), drawn from `seed`. Every image of a split is made from that split's
    sources only."""
    _, labels = _uci_digits()
    rng = np.random.default_rng([seed, 0])
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * DIGITS_TEST_SHARE))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_sources(train=6000, test=1000, seed=0):
    """(train sources, test sources): for each image of each split, in file order, the index into load_digits() of
    the handwritten digit it was made from. Labels are balanced (count % 10 spread at random); each split cycles
    through its own sources in shuffled rounds, so every source is used about equally often."""
    _, labels = _uci_digits()
    pools = digits_source_split(seed)
    rng = np.random.default_rng([seed, 1])
    out = []
    for count, pool in zip((train, test), pools):
        wanted = rng.permutation(np.arange(count) % 10)
        sources = np.empty(count, dtype=np.int64)
        for c in range(10):
            mine = pool[labels[pool] == c]
            need = int((wanted == c).sum())
            rounds = [rng.permutation(mine) for _ in range(-(-need // len(mine)))]
            sources[wanted == c] = np.concatenate(rounds)[:need] if rounds else []
        out.append(sources)
    return tuple(out)


def digit_images(images, rng):
    """(N, 28, 28) uint8 MNIST-like images from (N, 8, 8) float images in [0, 1]: each upscaled to 20×20 in the
    middle of a black 28×28 canvas, its stroke widened or thinned, rotated (±12°), scaled (0.9–1.1), shifted (±2 px)
    and given a contrast that saturates the strokes, as MNIST's are. All randomness comes from `rng`."""
    import torch
    import torch.nn.functional as F

    n = len(images)
    if n == 0:
        return np.zeros((0, 28, 28), dtype=np.uint8)
    col = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32)).view(-1, 1, 1, 1)  # noqa: E731
    stroke = col(rng.uniform(-0.5, 0.4, n))  # < 0 thins (erosion), > 0 widens (dilation), by that share
    angle = np.deg2rad(rng.uniform(-12.0, 12.0, n))
    scale = rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-2.0, 2.0, (n, 2)) / 14.0  # pixels, in affine_grid's [-1, 1] coordinates (28 px = 2)
    low, high = col(rng.uniform(0.12, 0.3, n)), col(rng.uniform(0.6, 0.8, n))
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).unsqueeze(1)
    x = F.pad(F.interpolate(x, size=(20, 20), mode="bicubic", align_corners=False).clamp(0, 1), (4, 4, 4, 4))
    wide, thin = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where(stroke > 0, x + stroke * (wide - x), x - stroke * (thin - x))
    # affine_grid maps each output pixel to the input pixel it samples: the inverse of rotate-and-scale, then shift.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    inverse = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1)
    theta = np.concatenate([inverse, -np.einsum("nij,nj->ni", inverse, shift)[:, :, None]], 2)
    grid = F.affine_grid(torch.from_numpy(theta.astype(np.float32)), [n, 1, 28, 28], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = ((x - low) / (high - low)).clamp(0, 1)
    return (x[:, 0] * 255).round().to(torch.uint8).numpy()


def _write_idx(path: Path, array: np.ndarray) -> str:
    """`array` (uint8, 1 or 3 dimensions) as an IDX file: big-endian magic 0x0000080<ndim>, the sizes, the bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return hashlib.md5(path.read_bytes()).hexdigest()


def digits_mnist_arrays(train=6000, test=1000, seed=0):
    """(train split, test split), each (images (N, 28, 28) uint8, labels (N,) uint8, sources (N,) int64): what
    write_digits_mnist writes, with each image's source index into load_digits() (see digits_sources)."""
    if train < 0 or test < 0:
        raise ValueError(f"train={train}, test={test}: image counts cannot be negative")
    images, labels = _uci_digits()
    rng = np.random.default_rng([seed, 2])
    return tuple((digit_images(images[sources], rng), labels[sources].astype(np.uint8), sources)
                 for sources in digits_sources(train, test, seed))


def write_digits_mnist(root, train=6000, test=1000, seed=0) -> Path:
    """Write the MNIST-format set of real handwritten digits to `root`/MNIST; returns that folder."""
    return write_digits_mnist_with_sums(root, train, test, seed)[0]


def write_digits_mnist_with_sums(root, train=6000, test=1000, seed=0):
    """(folder, md5 table {file name: md5}) of the MNIST-format set written to `root`: the table as computed while
    writing, for a caller that must not trust the manifest beside the data (see verify_mnist)."""
    folder = _mnist_folder(root)
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sums = {}
    for is_train, (images, labels, _) in zip((True, False), digits_mnist_arrays(train, test, seed)):
        image_file, label_file = MNIST_FILES[is_train]
        sums[image_file] = _write_idx(raw / image_file, images)
        sums[label_file] = _write_idx(raw / label_file, labels)
    split = digits_source_split(seed)
    manifest = {"generator": "autograder.data", "seed": seed, "train": train, "test": test, "source": DIGITS_SOURCE,
                "source_images": {"train": len(split[0]), "test": len(split[1])}, "checksums": sums}
    (folder / MNIST_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder, sums


def ensure_digits_mnist(root, **kwargs) -> Path:
    """The MNIST-format set at `root`, written first if it is not there (same arguments, same files)."""
    if not is_digits_mnist(root):
        write_digits_mnist(root, **kwargs)
    return Path(root)


def verify_mnist(root, checksums) -> None:
    """Raise ValueError unless each file named in `checksums` ({file name: md5}) lies in `root`/MNIST/raw with that
    md5, and no processed/training.pt or test.pt is there (torchvision would load those instead of the raw files).
    `checksums` must come from the caller (the grader: it wrote the set itself), never from a manifest beside the
    data: whoever can change the files can change that manifest too."""
    raw = _mnist_folder(root) / "raw"
    if not checksums:
        raise ValueError("verify_mnist: no checksums given; pass the md5 table from write_digits_mnist_with_sums")
    for legacy in MNIST_LEGACY:
        planted = _mnist_folder(root) / "processed" / legacy
        if planted.exists():
            raise ValueError(f"{planted} exists: torchvision's MNIST would load it instead of the checked raw files")
    for name, expected in checksums.items():
        if Path(name).name != name:
            raise ValueError(f"checksum table names {name!r}, not a plain file name")
        path = raw / name
        if not path.is_file():
            raise ValueError(f"{path} is missing (expected md5 {expected})")
        actual = hashlib.md5(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ValueError(f"{path}: md5 {actual} does not match the expected {expected}; the file was changed")


def open_mnist(root, train, transform=None, download=False, checksums=None):
    """torchvision's MNIST at `root` (files in `root`/MNIST/raw), its own class unchanged. With `checksums` (the
    grader's table from writing the set) the files are verified first; on the kit's set without them, against its
    manifest (which catches accidents, not tampering). Downloads only when asked and the kit's set is not there."""
    from torchvision.datasets import MNIST

    if checksums is None and is_digits_mnist(root):
        checksums = json.loads((_mnist_folder(root) / MNIST_MANIFEST).read_text())["checksums"]
    if checksums is not None:
        missing = [name for name in MNIST_FILES[bool(train)] if name not in checksums]
        if missing:
            raise ValueError(f"the checksum table has no md5 for {', '.join(missing)}")
        verify_mnist(root, checksums)
        download = False
    return MNIST(root, train=train, transform=transform, download=download)


def describe_mnist(root, where=True) -> str:
    """One line saying which MNIST lives at `root` (without the path when `where` is false), as `describe` does
    for CIFAR-10."""
    at = f" at {root}" if where else ""
    if not is_digits_mnist(root):
        return f"MNIST{at}"
    m = json.loads((_mnist_folder(root) / MNIST_MANIFEST).read_text())
    return (f"MNIST-format set of real handwritten digits (UCI digits from scikit-learn, upscaled to 28×28 and "
            f"augmented){at} ({int(m['train'])} train / {int(m['test'])} test images, seed {int(m['seed'])})")


def ensure_stand_ins(root) -> Path:
    """Both offline stand-ins at `root`, each written first if it is not there: the synthetic CIFAR-10 set and
    the MNIST-format digits, as the notebooks' DATA_DIR expects them side by side."""
    ensure_synthetic_cifar10(root)
    ensure_digits_mnist(root)
    return Path(root)


def describe_all(root, where=True) -> str:
    """Which CIFAR-10 and which MNIST live at `root`, in one line."""
    mnist = describe_mnist(root, where=False) if (_mnist_folder(root) / "raw").is_dir() else "no MNIST"
    return f"{describe(root, where)}; {mnist}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic set in CIFAR-10's on-disk format, or with "
                                     "--mnist an MNIST-format set of real handwritten digits (scikit-learn's).")
    parser.add_argument("root", help="data dir; files go to ROOT/cifar-10-batches-py (ROOT/MNIST/raw with --mnist)")
    parser.add_argument("--mnist", action="store_true",
                        help="write the MNIST-format set from the UCI digits instead of the CIFAR-10 one")
    parser.add_argument("--train", type=int, default=None,
                        help="training images (default 5000, a multiple of 5; 6000 with --mnist)")
    parser.add_argument("--test", type=int, default=1000, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.mnist:
        start = time.perf_counter()
        folder = write_digits_mnist(args.root, 6000 if args.train is None else args.train, args.test, args.seed)
        print(f"wrote {describe_mnist(args.root)} to {folder} in {time.perf_counter() - start:.1f} s")
        return
    folder = write_synthetic_cifar10(args.root, 5000 if args.train is None else args.train, args.test, args.seed)
    print(f"wrote {describe(args.root)} to {folder}")


if __name__ == "__main__":
    main()
