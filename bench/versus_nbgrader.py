"""Benchmark: `nbgrader autograde` against the kit's `autograde --nbgrader`, on the same submitted notebooks.

    .venv/bin/python bench/versus_nbgrader.py [--assignment resnet50_cifar10] [--samples a,b,...] [--jobs 1] [--quick]

Builds a real nbgrader course in a temporary folder, as a course that grades with nbgrader alone would write it: the
instructor notebook's grade cells (grade_id "graded_<part>", their points kept) hold assert-based autograder tests
inside "### BEGIN HIDDEN TESTS" / "### END HIDDEN TESTS"; the test of the training part asserts on the notebook's
own training history, so that cell sits after the training cells (in the source notebook and in the students'
notebooks, as this course's release would have handed it out). `nbgrader generate_assignment` builds the
assignment, with a per-cell execution timeout of an hour (`c.Execute.timeout`, nbgrader 0.9's Execute
preprocessor) for the training cells. One student per sample (--samples: the reference, every bug the declaration
lists, the untouched release), each a completed notebook (autograder.samples.as_notebook) with the settings it ships
with, goes to submitted/<student>/<assignment>/ with a timestamp, as collect leaves it; the offline synthetic
CIFAR-10 stand-in (autograder.data) is shipped with the assignment as ./data, where the notebooks look, since nothing
can be downloaded here.

Then, each on its own copy of the course (both write gradebook.db): `nbgrader autograde NAME` (it re-executes every
cell, training included) and the kit's `autograde --nbgrader COURSE --assignment NAME --jobs J` (it never runs the
notebooks; its time includes preparing the reference). Prints both times, per submission and in the kit's
yardstick (one Adam step, batch 32, of the ResNet-50 "layer4" reference: bench/grade_copies.py), the ratio, and both
grade tables side by side, per student and per part, from each course's gradebook (nbgrader's Gradebook API) and the
kit's grades.csv.

--quick (for the test only): the notebooks' settings become the smallest budget (1 epoch, 64 training and 32 test
images of a tiny synthetic set), so nbgrader's run is short; not a measurement.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from autograder.assignments import ASSIGNMENTS  # noqa: E402
from autograder.data import describe, write_synthetic_cifar10  # noqa: E402
from autograder.nbgrader_course import GRADE_ID, grade_cells  # noqa: E402
from autograder.notebooks import read, with_settings  # noqa: E402
from autograder.samples import as_notebook  # noqa: E402
from grade_copies import STAGES, training_step_seconds  # noqa: E402

BIN = Path(sys.executable).parent
CELL_TIMEOUT = 3600  # seconds per cell, as a course sets it for training cells
QUICK = {"EPOCHS": 1, "TRAIN_SUBSET": 64, "TEST_SUBSET": 32, "BATCH_SIZE": 32, "DOWNLOAD": False}


def hidden(body: str) -> str:
    return f"# autograder tests of this part\n### BEGIN HIDDEN TESTS\n{body.strip()}\n### END HIDDEN TESTS\n"


# The hidden tests per assignment and grade cell, as an nbgrader course writes them: plain asserts, the cell's points
# all or nothing. MOVE: grade cells whose tests read the notebook's own training run, and the text of the cell they
# must follow.
TESTS = {
    "resnet50_cifar10": {
        GRADE_ID.format("residual_block"): hidden("""
for _downsample, _expected in [(False, (2, 256, 8, 8)), (True, (2, 256, 4, 4))]:
    _block = ResidualBlock(64, 64, 256, downsample=_downsample)
    _kernels = [m.kernel_size for m in _block.layer.modules() if isinstance(m, nn.Conv2d)]
    assert _kernels == [(1, 1), (3, 3), (1, 1)], f"downsample={_downsample}: kernels {_kernels}"
    _shape = tuple(_block(torch.randn(2, 64, 8, 8)).shape)
    assert _shape == _expected, f"downsample={_downsample}: output {_shape}, expected {_expected}"
    _count = sum(p.numel() for p in _block.parameters())
    assert _count == 75_648, f"downsample={_downsample}: {_count} parameters, expected 75,648"
"""),
        GRADE_ID.format("resnet50_layer4"): hidden("""
_model = ResNet50_layer4(num_classes=10).eval()
_x = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    assert tuple(_model.layer1[0](_x).shape) == (2, 64, 16, 16), "the 7x7 conv of layer1"
    _out = _x
    for _stage, _expected in [("layer1", (2, 64, 8, 8)), ("layer2", (2, 256, 4, 4)), ("layer3", (2, 512, 2, 2)),
                              ("layer4", (2, 1024, 2, 2)), ("avgpool", (2, 1024, 1, 1))]:
        _out = getattr(_model, _stage)(_out)
        assert tuple(_out.shape) == _expected, f"{_stage}: {tuple(_out.shape)}, expected {_expected}"
    assert tuple(_model(_x).shape) == (2, 10), "the output must be (2, 10)"
assert isinstance(_model.fc, nn.Linear) and isinstance(_model.avgpool, nn.AvgPool2d)
_count = sum(p.numel() for p in _model.parameters())
assert _count == 14_750_730, f"{_count:,} parameters, expected 14,750,730"
"""),
        GRADE_ID.format("training"): hidden("""
import math
_h = histories["ResNet-50 (layer4)"]
assert len(_h["train_loss"]) == EPOCHS >= 1, "the ResNet's training run did not finish"
assert all(math.isfinite(v) for v in _h["train_loss"]), "the ResNet's train loss is not finite"
assert _h["train_loss"][-1] < math.log(10), "the ResNet's train loss did not fall below chance (log 10)"
if len(_h["train_loss"]) > 1:
    assert _h["train_loss"][-1] < _h["train_loss"][0], "the ResNet's train loss did not fall"
assert _h["test_acc"][-1] > 10.0, f"final test accuracy {_h['test_acc'][-1]:.1f}% is not above chance (10%)"
"""),
    },
}
MOVE = {"resnet50_cifar10": {GRADE_ID.format("training"): "histories[name] = train("}}


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def place_after_training(nb, name):
    """`nb` with the grade cells that test the training run moved to just after the training cell."""
    for gid, anchor in MOVE.get(name, {}).items():
        cell = next(c for c in nb.cells if grade_id(c) == gid)
        nb.cells.remove(cell)
        at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and anchor in c.source)
        nb.cells.insert(at + 1, cell)
    return nb


def instructor_notebook(assignment):
    nb = read(assignment.source)
    tests = TESTS[assignment.name]
    if set(tests) != set(grade_cells(nb)):
        sys.exit(f"{assignment.name}: the tests here are for {sorted(tests)}, the notebook's grade cells are "
                 f"{sorted(grade_cells(nb))}")
    for cell in nb.cells:
        if grade_id(cell) in tests:
            cell.source = tests[grade_id(cell)]  # points, locks and ids stay as they are
    return place_after_training(nb, assignment.name)


def run(args, cwd, timeout):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.monotonic()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                 f"{done.stderr[-3000:]}")
    return seconds, done


def pool(assignment) -> list:
    """Every sample a student could hand in as a notebook: the reference, each bug, the untouched release."""
    return ["reference", *assignment.samples, "release"]


def submitted_notebook(assignment, sample):
    if sample == "release":
        return read(assignment.samples_dir / "release_notebook.ipynb")
    return as_notebook(assignment, sample)


def build_course(assignment, samples, quick, tmp: Path):
    """The course (gradebook with the assignment, one submission per sample placed); returns (course,
    [(student, sample)], data description)."""
    name, notebook = assignment.name, assignment.notebook
    course = tmp / "course"
    (course / "source" / name).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'cnn'\n"
        f"c.Execute.timeout = {CELL_TIMEOUT}  # per cell: the training cells run for minutes\n")
    nbformat.write(instructor_notebook(assignment), str(course / "source" / name / notebook))
    settings = {}
    if quick:
        data = write_synthetic_cifar10(tmp / "quick-data", train=100, test=50, seed=1).parent
        settings = {**QUICK, "DATA_DIR": str(data)}
    else:  # shipped with the assignment where the notebooks look (DATA_DIR = "./data"): autograde copies it over
        data = write_synthetic_cifar10(course / "source" / name / "data").parent
    run([BIN / "nbgrader", "generate_assignment", name], course, 600)
    placed = []
    for i, sample in enumerate(samples):
        student = f"s{i + 1:02d}_{sample}"
        nb = place_after_training(submitted_notebook(assignment, sample), name)
        if settings:
            nb = with_settings(nb, settings)
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / notebook))
        (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
        placed.append((student, sample))
    where = "DATA_DIR set to a temporary folder" if quick else "shipped with the assignment as ./data"
    return course, placed, f"{describe(data, where=False)}, {where}"


def gradebook_scores(course, assignment, students):
    """{student: {grade id: score}} from the course's gradebook."""
    from nbgrader.api import Gradebook

    stem = Path(assignment.notebook).stem
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        cells = grade_cells(read(assignment.source))
        return {s: {c: gb.find_grade(c, stem, assignment.name, s).score for c in cells} for s in students}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="resnet50_cifar10", choices=sorted(ASSIGNMENTS))
    parser.add_argument("--samples", help="comma-separated samples, one student each (default: all of them)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smallest settings in the notebooks: for the test only")
    args = parser.parse_args(argv)
    if args.assignment not in TESTS:
        sys.exit(f"{args.assignment}: this benchmark has nbgrader tests only for {sorted(TESTS)}")
    assignment = ASSIGNMENTS[args.assignment]
    samples = args.samples.split(",") if args.samples else pool(assignment)
    unknown = sorted(set(samples) - set(pool(assignment)))
    if unknown:
        sys.exit(f"{args.assignment}: no sample {unknown}; there are {pool(assignment)}")
    if args.quick:
        print("quick mode: not a measurement (the notebooks' settings are shrunk to 1 epoch on 64 images)")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # what both graders pick on their own
    step = training_step_seconds(device)
    tmp = Path(tempfile.mkdtemp(prefix="versus-nbgrader-"))
    try:
        course, placed, data = build_course(assignment, samples, args.quick, tmp)
        kit_course = tmp / "course-kit"
        shutil.copytree(course, kit_course)  # the same gradebook and submissions: each grader starts clean
        students = [s for s, _ in placed]
        print(f"{args.assignment}: {len(placed)} submissions ({', '.join(samples)}); device {device}")
        print(f"notebooks' data (nbgrader): {data}")
        nb_seconds, _ = run([BIN / "nbgrader", "autograde", args.assignment], course, 24 * 3600)
        kit_seconds, kit_run = run([sys.executable, "-m", "autograder.cli", "--nbgrader", str(kit_course),
                                    "--assignment", args.assignment, "--jobs", str(args.jobs)], ROOT, 24 * 3600)
        kit_data = next((line for line in kit_run.stdout.splitlines() + kit_run.stderr.splitlines()
                         if line.startswith("data for the training run")), "")
        if kit_data:
            print(f"kit's {kit_data}")
        nb_scores = gradebook_scores(course, assignment, students)
        kit_cells = gradebook_scores(kit_course, assignment, students)
        with open(kit_course / "autograde" / args.assignment / "grades.csv") as f:
            kit_totals = {row["student"]: float(row["score"]) for row in csv.DictReader(f)}
        state = kit_course / "autograde" / args.assignment / "state"
        states = [json.loads(p.read_text()) for p in state.glob("*.json")]
        kit_stages = {stage: statistics.mean(s.get("timings", {}).get(stage, 0.0) for s in states) for stage in STAGES}
        again = training_step_seconds(device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = len(placed)
    print(f"\n  {'nbgrader autograde':<40} {nb_seconds:8.1f} s   {nb_seconds / n:7.1f} s per submission   "
          f"({nb_seconds / n / step:6.1f} steps)")
    print(f"  {f'kit autograde --jobs {args.jobs} (with reference)':<40} {kit_seconds:8.1f} s   "
          f"{kit_seconds / n:7.1f} s per submission   ({kit_seconds / n / step:6.1f} steps)")
    print(f"  {'  kit per submission, by stage (mean)':<40} "
          + ", ".join(f"{k} {v:.1f} s" for k, v in kit_stages.items()))
    print(f"  {'  kit outside those (reference, start-up)':<40} {kit_seconds - n * sum(kit_stages.values()):8.1f} s "
          "(with --jobs 1)")
    print(f"  {'one training step (yardstick)':<40} {step:8.3f} s   (again at the end: {again:.3f} s)")
    ratio = nb_seconds / kit_seconds
    print(f"  ratio nbgrader / kit: {ratio:.1f}x  (goal >= 10x: {'met' if ratio >= 10 else 'not met'})")

    cells = list(next(iter(nb_scores.values())))
    short = [c.removeprefix("graded_") for c in cells]
    print("\n  grades, nbgrader | kit (per part: " + ", ".join(short) + ")")
    print(f"  {'student':<24} {'sample':<30} {'nbgrader':>9} {'kit':>6}   per part nbgrader | kit")
    for student, sample in placed:
        nb_total = sum(nb_scores[student].values())
        parts = "  ".join(f"{nb_scores[student][c]:g}|{kit_cells[student][c]:g}" for c in cells)
        print(f"  {student:<24} {sample:<30} {nb_total:9g} {kit_totals[student]:6g}   {parts}")
        assert kit_totals[student] == sum(kit_cells[student].values()), "grades.csv and the gradebook differ"

    totals = {"nbgrader": {sample: sum(nb_scores[s].values()) for s, sample in placed},
              "kit": {sample: kit_totals[s] for s, sample in placed}}
    print()
    for grader, by_sample in totals.items():
        print(f"  {grader:<8} " + ", ".join(discrimination(assignment, by_sample)))


def discrimination(assignment, by_sample) -> list:
    """How well one grader's totals tell the samples apart: bugs scored below the reference, honest variants scored
    as the reference, distinct totals."""
    facts = [f"{len(set(by_sample.values()))} distinct totals over {len(by_sample)} samples"]
    if "reference" in by_sample:
        full = by_sample["reference"]
        honest = [s for s in by_sample if s in assignment.samples and assignment.samples[s][0].startswith("honest")]
        bugs = [s for s in by_sample if s not in honest and s != "reference"]
        below = sum(by_sample[s] < full for s in bugs)
        facts.insert(0, f"wrong samples (bugs, the untouched release) scored below the reference: {below} of "
                        f"{len(bugs)}")
        if honest:
            facts.insert(1, f"honest variants scored as the reference: {sum(by_sample[s] == full for s in honest)} "
                            f"of {len(honest)}")
    return facts


if __name__ == "__main__":
    main()
