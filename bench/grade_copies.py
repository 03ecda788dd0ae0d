"""Benchmark: grade N copies of each assignment's reference and report where the time and memory go.

    .venv/bin/python bench/grade_copies.py [--copies 4] [--jobs 1] [--device cpu|cuda] [--cold-sandbox]
                                           [--assignment NAME ...]

Per assignment and submission (means over the copies): process start (the sandboxed child importing torch), load
(parsing the submission), export (defining and exporting its models in the child), rebuild, checks and the
training run; a submission's whole grading in its worker (what each further student costs); then the wall time
per submission of the whole batch (which also holds, once per run, reading the reference's cached result and
starting the workers and their warm sandbox), and peak resident memory of the grading process and of the largest
child. Speed is also given in the kit's yardstick, which machines of different speed
share: seconds per submission over seconds of one Adam step (batch 32) of the ResNet-50 "layer4" reference,
measured in the same run.
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
from autograder.assignments import ASSIGNMENTS  # noqa: E402

STAGES = ["process_start", "load", "export", "rebuild", "checks", "training"]


def training_step_seconds(device, steps=10):
    """The yardstick: seconds of one Adam step (batch 32) of the ResNet-50 "layer4" reference on `device`, after
    two warm-up steps."""
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


def grade_copies(assignment, copies, jobs, device, work: Path, cold=False) -> dict:
    """{stage: mean seconds} and the batch's wall time of grading `copies` copies of the reference."""
    subs = []
    for i in range(copies):
        subs.append(work / f"copy{i:03d}.py")
        shutil.copy(assignment.samples_dir / "reference.py", subs[-1])
    out = work / "out"
    # the reference's own preparation (export + training, cached on disk) is not part of a submission's time
    cli.main(["--assignment", assignment.name, "--out", str(out), "--device", device, str(subs[0])])
    shutil.rmtree(out / "state")
    started = time.monotonic()
    cli.main(["--assignment", assignment.name, "--out", str(out), "--device", device, "--jobs", str(jobs),
              "--force", *(["--cold-sandbox"] if cold else []), *map(str, subs)])
    wall = time.monotonic() - started
    states = [json.loads(p.read_text()) for p in (out / "state").glob("*.json")]
    assert all(s["score"] == s["max_score"] for s in states), "a copy of the reference lost points"
    timings = {stage: statistics.mean(s["timings"].get(stage, 0.0) for s in states) for stage in STAGES}
    timings["sandbox (start + export + exit)"] = statistics.mean(s["timings"]["sandbox"] for s in states)
    # the warm sandbox starts once per worker, with its first student: apart, as the batch's fixed cost
    timings["warm sandbox start, once per worker"] = sum(s["timings"]["workdir"] for s in states) / jobs
    timings["per submission, in its worker"] = statistics.mean(s["timings"]["total"] - s["timings"]["workdir"]
                                                              for s in states)
    return timings, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cold-sandbox", action="store_true", help="start each child fresh (autograde's flag)")
    parser.add_argument("--assignment", nargs="*", default=sorted(ASSIGNMENTS), choices=sorted(ASSIGNMENTS))
    args = parser.parse_args()
    step = training_step_seconds(args.device)
    rows = []
    for name in args.assignment:
        work = Path(tempfile.mkdtemp(prefix="bench-"))
        try:
            timings, wall = grade_copies(ASSIGNMENTS[name], args.copies, args.jobs, args.device, work,
                                         args.cold_sandbox)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\n{name}: {args.copies} copies of the reference, --jobs {args.jobs}, training on {args.device}, "
              f"{'cold' if args.cold_sandbox else 'warm'} sandbox")
        for stage, seconds in timings.items():
            print(f"  {stage:<38} {seconds:6.2f} s   ({seconds / step:5.1f} steps)")
        print(f"  {'wall time per submission':<38} {wall / args.copies:6.2f} s   (batch {wall:.1f} s)")
        rows.append((name, wall / args.copies))
    again = training_step_seconds(args.device)  # the machine may have slowed down: both ends are shown
    print(f"\n  {'one training step (yardstick)':<32} {step:6.3f} s   (again at the end: {again:.3f} s)")
    for name, seconds in rows:
        print(f"  {name + ': submission / step':<48} {seconds / step:6.1f}")
    print(f"  {'peak RSS, grading process':<32} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.0f} MB")
    print(f"  {'peak RSS, largest child':<32} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:6.0f} MB")


if __name__ == "__main__":
    main()
