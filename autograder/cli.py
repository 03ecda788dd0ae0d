"""autograde: grade every submission of an assignment; results are written as each student finishes.

autograde --assignment resnet50_cifar10 --out OUT [--jobs N] [--device auto|cpu|cuda] [--data-dir D] [--force]
          SUBMISSION...
"""
import argparse
import multiprocessing
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from . import report, sandbox
from .assignments import ASSIGNMENTS
from .check import Result
from .grade import StudentResult, grade, prepare
from .load import find_submissions

_CONTEXT = None  # the run's context, inherited by forked workers
_INTERRUPTED = False


def _on_ctrl_c(signum, frame):
    """Ctrl-C raises KeyboardInterrupt at once, and is also remembered: one that lands where Python drops the
    exception (inside the at-fork handlers that each sandbox run goes through) still stops the batch after the
    student in hand."""
    global _INTERRUPTED
    _INTERRUPTED = True
    raise KeyboardInterrupt


def _grade_one(task):
    """grade() for a worker; an internal error becomes that student's result, never the batch's end."""
    import torch

    student, path, scratch = task
    torch.set_num_threads(_CONTEXT.limits.threads)
    identity = multiprocessing.current_process()._identity  # (k,) in the k-th pool worker, () in the main process
    try:
        return grade(student, Path(path), _CONTEXT, Path(scratch), slot=identity[0] if identity else 0)
    except Exception as exc:  # noqa: BLE001 - a grader bug must not stop the batch
        # the traceback is for the instructor's terminal only: feedback never shows grader code
        print(f"\ninternal error grading {student}:\n{traceback.format_exc()}", file=sys.stderr)
        columns = _CONTEXT.checklist.columns()
        return StudentResult(student, str(path), [Result(n, t, 0, p, False, "not run: internal grader error")
                                                  for n, t, p in columns],
                             cause=f"internal: the grader failed on this submission ({type(exc).__name__}); "
                                   "your instructor has the details")


def unique(submissions):
    seen = {}
    for s in submissions:
        base, n = s.student, 1
        while report.safe_name(s.student) in seen:
            n += 1
            s.student = f"{base}-{n}"
        seen[report.safe_name(s.student)] = s
    return list(seen.values())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="autograde", description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", required=True, choices=sorted(ASSIGNMENTS))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the training run happens (auto: cuda when available)")
    parser.add_argument("--data-dir", help="CIFAR-10 here is used when found; else the synthetic set")
    parser.add_argument("--force", action="store_true", help="grade again students whose results exist")
    parser.add_argument("--timeout", type=float, default=sandbox.Limits.timeout_s,
                        help="seconds for one submission's sandbox (default %(default)s)")
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help=".ipynb or .py files, folders (one per student), or zips of such")
    args = parser.parse_args(argv)

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    missing = [p for p in args.submissions if not Path(p).exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")

    assignment = ASSIGNMENTS[args.assignment]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sandbox.protect([out, Path(__file__).with_name("checks"), assignment.reference_module.parent])
    scratch = sandbox.scratch_dir()
    started = time.monotonic()
    jobs = max(1, args.jobs)
    limits = sandbox.Limits(timeout_s=args.timeout, threads=max(1, (os.cpu_count() or 2) // jobs))

    global _CONTEXT
    signal.signal(signal.SIGINT, _on_ctrl_c)
    print(f"autograde {assignment.name}: preparing the reference (export, rebuild, training run on {device})",
          file=sys.stderr)
    _CONTEXT = prepare(assignment, args.data_dir, device, out / ".cache", scratch, limits)
    columns = _CONTEXT.checklist.columns()
    print(f"data for the training run: {_CONTEXT.data}; the reference reaches "
          f"{_CONTEXT.reference.reference_training['accuracy']:.0%} held-out accuracy", file=sys.stderr)

    submissions = unique(find_submissions(args.submissions, scratch))
    todo = [s for s in submissions if args.force or not report.done(out, s.student)]
    if len(todo) < len(submissions):
        print(f"skipping {len(submissions) - len(todo)} student(s) already graded (--force grades them again)",
              file=sys.stderr)
    extra = {"device": device, "data": _CONTEXT.data, "isolation": sandbox.isolation(),
             "reference_training": _CONTEXT.reference.reference_training}
    try:
        with tqdm(total=len(todo), desc="grading", unit="student") as bar:
            tasks = [(s.student, str(s.path), str(scratch)) for s in todo]
            if jobs == 1 or len(todo) <= 1:
                finished = map(_grade_one, tasks)
            else:
                pool = multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=None)
                finished = pool.imap_unordered(_grade_one, tasks)
            for result in finished:
                report.write_student(out, result, assignment.name)
                bar.update()
                if _INTERRUPTED:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("\ninterrupted: every finished student's results are on disk", file=sys.stderr)
        return 130
    finally:
        if jobs > 1 and len(todo) > 1:
            pool.terminate()
        extra["seconds"] = round(time.monotonic() - started, 1)
        results = report.write_class(out, assignment.name, columns, extra)
        shutil.rmtree(scratch, ignore_errors=True)
    print(report.table(results, sum(c[2] for c in columns)))
    print(f"\n{len(results)} student(s) in {out}/grades.csv; feedback in {out}/feedback/, Gradescope results in "
          f"{out}/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
