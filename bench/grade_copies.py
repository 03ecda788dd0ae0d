"""Benchmark: grade N copies of the reference and report where the time and memory go.

    .venv/bin/python bench/grade_copies.py [--copies 4] [--jobs 1] [--device cpu|cuda]

Per submission (means over the copies): process start (the sandboxed child importing torch), load (parsing the
submission), export (defining and exporting its models in the child), rebuild, checks and the training run; then
the wall time per submission of the whole batch, and peak resident memory of the grading process and of the
largest child. Speed is also given as a ratio that machines of different speed share: seconds per submission
over seconds of one training step of the reference net (Adam, batch 32), measured in the same run.
"""
import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder import cli  # noqa: E402

STAGES = ["process_start", "load", "export", "rebuild", "checks", "training"]


def training_step_seconds(device, steps=10):
    """Seconds of one Adam step (batch 32) of the reference net on `device`, after two warm-up steps."""
    import torch
    import torch.nn.functional as F

    from tests.helpers import import_file

    torch.manual_seed(0)
    model = import_file(ROOT / "solutions" / "resnet50_cifar10" / "resnet50_skeleton.py").ResNet50_layer4().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 3, 32, 32, device=device), torch.randint(0, 10, (32,), device=device)
    for i in range(steps + 2):
        if i == 2:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.monotonic()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.monotonic() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    reference = ROOT / "solutions" / "resnet50_cifar10" / "samples" / "reference.py"
    subs = []
    for i in range(args.copies):
        subs.append(work / f"copy{i:03d}.py")
        shutil.copy(reference, subs[-1])
    out = work / "out"
    # the reference's own preparation (export + training, cached on disk) is not part of a submission's time
    cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--device", args.device, str(subs[0])])
    shutil.rmtree(out / "state")
    started = time.monotonic()
    cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--device", args.device, "--jobs",
              str(args.jobs), "--force", *map(str, subs)])
    wall = time.monotonic() - started
    states = [json.loads(p.read_text()) for p in (out / "state").glob("*.json")]
    assert all(s["score"] == 120 for s in states), "a copy of the reference lost points"
    timings = {stage: statistics.mean(s["timings"].get(stage, 0.0) for s in states) for stage in STAGES}
    timings["sandbox (start + export + exit)"] = statistics.mean(s["timings"]["sandbox"] for s in states)
    grader_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\n{args.copies} copies of the reference, --jobs {args.jobs}, training on {args.device}")
    for stage, seconds in timings.items():
        print(f"  {stage:<32} {seconds:6.2f} s")
    step = training_step_seconds(args.device)
    print(f"  {'wall time per submission':<32} {wall / args.copies:6.2f} s   (batch {wall:.1f} s)")
    print(f"  {'one training step (reference)':<32} {step:6.3f} s")
    print(f"  {'submission / training step':<32} {wall / args.copies / step:6.1f}")
    print(f"  {'peak RSS, grading process':<32} {grader_mb:6.0f} MB")
    print(f"  {'peak RSS, largest child':<32} {child_mb:6.0f} MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
