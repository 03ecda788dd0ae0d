"""autograde: grade every submission of an assignment; results are written as each student finishes.

autograde --assignment NAME --out OUT [--jobs N] [--device auto|cpu|cuda] [--data-dir D] [--force]
          [--timeout S] [--grading-timeout S] [--cold-sandbox] [--ray ADDRESS] SUBMISSION...
autograde --nbgrader COURSE_DIR --assignment NAME [--out OUT] [...]    (an nbgrader course's collected
          submissions; the scores go into its gradebook, the feedback where nbgrader's goes)
autograde --list    (every assignment, with its checks and their points)
"""
import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import report, sandbox
from .assignments import ASSIGNMENTS, ROOT, SOLUTIONS
from .grade import Checklist, prepare, submission_hash
from .load import find_submissions
from .nbgrader_course import Course, CourseError
from .train import DataError, outcome
from .workers import START_METHOD, grade_all

_INTERRUPTED = False
GRADING_MEMORY = 8 << 30  # address space of a grading worker on the CPU (CUDA maps far more: no cap there)


def _on_ctrl_c(signum, frame):
    """Ctrl-C raises KeyboardInterrupt at once, and is also remembered: one that lands where Python drops the
    exception still stops the batch after the student in hand."""
    global _INTERRUPTED
    _INTERRUPTED = True
    raise KeyboardInterrupt


def unique(submissions):
    """One name per student (a clash gets "-2", "-3"). Names from a class zip's folders come last, so a zip that
    holds a folder named after a classmate cannot take the name of the classmate's own file."""
    seen = {}
    for s in sorted(submissions, key=lambda s: s.from_class_zip):  # stable: otherwise in the order given
        # a file name's bytes that are not UTF-8 (bad\xff.py from a shell glob) would stop grades.csv: replaced
        s.student = s.student.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        base, n = s.student, 1
        while report.safe_name(s.student) in seen:
            n += 1
            s.student = f"{base}-{n}"
        seen[report.safe_name(s.student)] = s
    return list(seen.values())


def pick_device(requested: str) -> str:
    """The device of the training run. auto: CUDA when available; cuda without a GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    return requested


def record(course, results, name):
    """The scores into the course's gradebook; a failure there is reported, and the results stay in OUT."""
    try:
        recorded = course.record(results, lambda r: report.feedback(r, name))
    except Exception as exc:  # a locked or broken database: say so; grades.csv and the feedback files stand
        print(f"nbgrader: could not write the gradebook ({type(exc).__name__}: {exc}); every result is in OUT, "
              "run the same command again to record them", file=sys.stderr)
        return
    print(f"nbgrader: {recorded} student(s) scored in {course.coursedir.db_url}, feedback in "
          f"{course.root / 'feedback'}/ (`nbgrader release_feedback {name}` sends it)", file=sys.stderr)


def listing() -> str:
    """Every assignment: its name, title and total, then each check's points and title."""
    lines = []
    for assignment in ASSIGNMENTS.values():
        columns = Checklist.of(assignment).columns()
        lines += [f"{assignment.name}: {assignment.title} ({sum(c[2] for c in columns)} points)"]
        lines += [f"  {points:>3}  {title}" for _, title, points in columns] + [""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="autograde", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every assignment with its checks and points")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS))
    parser.add_argument("--out", type=Path, help="where results go (with --nbgrader, default "
                                                 "COURSE_DIR/autograde/NAME)")
    parser.add_argument("--nbgrader", type=Path, metavar="COURSE_DIR",
                        help="grade COURSE_DIR/submitted/<student>/NAME/ and write the scores into the course's "
                             "gradebook, the feedback into COURSE_DIR/feedback/")
    parser.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where the training run happens (auto: cuda when available)")
    parser.add_argument("--data-dir", help="a folder holding the training run's data as torchvision downloads it: "
                                           "CIFAR-10 (cifar-10-batches-py/), or MNIST (MNIST/raw/) for an "
                                           "assignment that trains on digits; default: the kit's stand-in, "
                                           "written afresh")
    parser.add_argument("--force", action="store_true", help="grade again students whose results exist")
    parser.add_argument("--timeout", type=float, default=sandbox.Limits.timeout_s,
                        help="seconds for one submission's sandbox (default %(default)s)")
    parser.add_argument("--cold-sandbox", action="store_true",
                        help="start every submission's sandboxed child as a fresh Python (slower) instead of "
                             "forking it from a warm one")
    parser.add_argument("--grading-timeout", type=float, default=600.0,
                        help="seconds for one submission's whole grading, training included (default %(default)s)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="grade on a Ray cluster: one task per student (\"auto\": the cluster this machine "
                             "belongs to; or host:port, ray://host:10001); see autograder/cluster.py")
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help=".ipynb or .py files, folders (one per student), or zips of such")
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0
    if args.nbgrader and args.assignment and not args.submissions:
        args.out = args.out or args.nbgrader / "autograde" / args.assignment
    elif args.nbgrader:
        parser.error("--nbgrader takes --assignment and no SUBMISSION: it grades the course's submitted/ folder")
    elif not (args.assignment and args.out and args.submissions):
        parser.error("--assignment, --out and at least one SUBMISSION are required (or --nbgrader, or --list)")

    try:
        device = pick_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    missing = [p for p in args.submissions if not Path(p).exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")

    assignment = ASSIGNMENTS[args.assignment]
    course = None
    if args.nbgrader:
        try:
            checklist = Checklist.of(assignment)
            course = Course(args.nbgrader, assignment, checklist, checklist.columns())
            course.verify()
            if not course.submissions():
                raise CourseError(f"no submissions of {assignment.name} in {course.folder}/<student>/"
                                  f"{assignment.name}/")
        except (CourseError, OSError) as exc:
            parser.error(f"--nbgrader {args.nbgrader}: {exc}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        report.claim(out, assignment.name)
    except ValueError as exc:
        parser.error(str(exc))
    course_root = [course.root] if course else []  # every student's submission, and the gradebook
    sandbox.protect([out, SOLUTIONS, ROOT / "tests", *course_root])  # every assignment's checks and solutions
    jobs = max(1, args.jobs)
    limits = sandbox.Limits(timeout_s=args.timeout, threads=max(1, (os.cpu_count() or 2) // jobs),
                            warm=not (args.cold_sandbox or args.ray))  # on Ray each task starts cold
    isolation = sandbox.isolation(limits.warm)
    for line in isolation:
        if "WARNING" in line:
            print(f"autograde: {line}", file=sys.stderr)
    scratch = sandbox.scratch_dir()
    started = time.monotonic()
    hide = (ROOT, out.resolve(), scratch, Path(sys.prefix), Path.home(), *course_root)
    ray_info = None
    if args.ray:  # joined before the reference's preparation, so a wrong address or shape fails at once
        from . import cluster
        try:
            ray_info = cluster.connect(args.ray, device, jobs, limits.threads)
        except cluster.ClusterError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            parser.error(str(exc))

    signal.signal(signal.SIGINT, _on_ctrl_c)
    print(f"autograde {assignment.name}: preparing the reference (export, rebuild, training run on {device})",
          file=sys.stderr)
    try:
        context = prepare(assignment, args.data_dir, device, out / ".cache", scratch, limits,
                          trust_cache=bool(sandbox.jail().bwrap), hide=hide)
    except DataError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        parser.error(str(exc))
    columns = context.checklist.columns()
    print(f"data for the training run: {context.data}; the reference reaches "
          f"{outcome(context.reference.reference_training)}", file=sys.stderr)

    submissions = course.submissions() if course else unique(find_submissions(args.submissions, scratch))
    todo = [s for s in submissions if args.force or not report.done(
        out, s.student, {**context.key, "submission": submission_hash(s.path) if s.path.exists() else ""})]
    if len(todo) < len(submissions):
        print(f"skipping {len(submissions) - len(todo)} student(s) already graded from the same submission and "
              "settings (--force grades them again)", file=sys.stderr)
    hellos = []
    extra = {"device": device, "data": context.data, "isolation": isolation,
             "reference_training": context.reference.reference_training, "workers": hellos}
    tasks = [(s.student, str(s.path), str(scratch), getattr(s, "error", None)) for s in todo]
    memory = GRADING_MEMORY if device == "cpu" else 0
    if ray_info:
        extra["ray"] = ray_info  # the address, the nodes, CPUs and GPUs it reported, and each task's resources
    grading = cluster.grade_on_ray(tasks, context, args.ray, jobs, args.grading_timeout, hellos, ray_info) \
        if ray_info else grade_all(tasks, context, jobs, args.grading_timeout, memory, hellos)
    try:
        with tqdm(total=len(todo), desc="grading", unit="student") as bar, contextlib.closing(grading) as done:
            for result in done:
                report.write_student(out, result, assignment.name)
                bar.update()
                if _INTERRUPTED:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("\ninterrupted: every finished student's results are on disk", file=sys.stderr)
        return 130
    finally:
        extra["seconds"] = round(time.monotonic() - started, 1)
        extra["start_method"] = "ray" if ray_info else START_METHOD
        results = report.write_class(out, assignment.name, columns, extra)
        shutil.rmtree(scratch, ignore_errors=True)
        if course:
            record(course, results, assignment.name)
    print(report.table(results, sum(c[2] for c in columns)))
    print(f"\n{len(results)} student(s) in {out}/grades.csv; feedback in {out}/feedback/, Gradescope results in "
          f"{out}/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
