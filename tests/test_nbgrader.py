"""`autograde --nbgrader` on a real nbgrader course that nbgrader itself builds: generate, release, a student's
fetch and submit, collect, two more students placed as collect places them; then the kit grades, `nbgrader export`
lists the same totals, each part's grade cell holds its checks' points, and the student fetches the feedback."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import get_username

from autograder.assignments import ASSIGNMENTS
from autograder.grade import Checklist
from autograder.nbgrader_course import GRADE_ID, CourseError, grade_cells, part_points

NAME = "resnet_paper_cifar10"
ASSIGNMENT = ASSIGNMENTS[NAME]
NOTEBOOK = ASSIGNMENT.notebook
SAMPLES = ASSIGNMENT.samples_dir
SUBMITTER = get_username()  # nbgrader submit names the student after the account
PLACED = {"bob": "relu_before_add_notebook.ipynb", "carol": "release_notebook.ipynb"}  # carol is not in the db
EXPECTED = {SUBMITTER: 100.0, "bob": 95.0, "carol": 0.0}
BIN = Path(sys.executable).parent


def nbgrader(cwd, *args):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def autograde(course, *extra):
    return subprocess.run([sys.executable, "-m", "autograder.cli", "--nbgrader", str(course), "--assignment", NAME,
                           *extra], capture_output=True, text=True, timeout=1800)


def make_course(tmp: Path) -> Path:
    course, student, exchange = tmp / "course", tmp / "student", tmp / "exchange"
    for folder in (course / "source" / NAME, student, exchange):
        folder.mkdir(parents=True)
    exchange.chmod(0o777)
    config = (f"c = get_config()\nc.CourseDirectory.course_id = 'cnn'\nc.Exchange.root = {str(exchange)!r}\n"
              f"c.Exchange.cache = {str(tmp / 'cache')!r}\n")
    for where in (course, student):
        (where / "nbgrader_config.py").write_text(config)
    shutil.copy(ASSIGNMENT.source, course / "source" / NAME / NOTEBOOK)
    nbgrader(course, "generate_assignment", NAME)
    nbgrader(course, "release_assignment", NAME)
    nbgrader(student, "fetch_assignment", NAME)
    shutil.copy(SAMPLES / "reference_notebook.ipynb", student / NAME / NOTEBOOK)
    nbgrader(student, "submit", NAME)
    nbgrader(course, "collect", NAME)
    nbgrader(course, "db", "student", "add", "bob", "--last-name=Builder")
    for who, sample in PLACED.items():  # what collect leaves: the notebook, its timestamp, the submission's secret
        folder = course / "submitted" / who / NAME
        folder.mkdir(parents=True)
        shutil.copy(SAMPLES / sample, folder / NOTEBOOK)
        (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
        (folder / "submission_secret.txt").write_text(f"secret-of-{who}")
    return course


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = make_course(tmp)
    run = autograde(course, "--jobs", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    return tmp, course, run


def test_nbgrader_export_lists_the_kits_totals(graded):
    _, course, run = graded
    nbgrader(course, "export")
    exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(open(course / "grades.csv"))}
    kit = {row["student"]: float(row["score"])
           for row in csv.DictReader(open(course / "autograde" / NAME / "grades.csv"))}
    assert exported == kit == EXPECTED
    assert "3 student(s) scored" in run.stderr


def test_each_part_is_a_grade_cell_with_its_checks_points(graded):
    from nbgrader.api import Gradebook

    _, course, _ = graded
    parts = part_points(Checklist.of(ASSIGNMENT).parts, Checklist.of(ASSIGNMENT).columns())
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        for student in EXPECTED:
            scores = {cell: gb.find_grade(cell, Path(NOTEBOOK).stem, NAME, student) for cell in parts}
            assert {cell: g.max_score for cell, g in scores.items()} == parts
            assert not any(g.needs_manual_grade for g in scores.values())
            got = {cell: g.score for cell, g in scores.items()}
            if student == "bob":  # ReLU before the addition: the block's residual check, 5 of the block's 30
                assert got == {**parts, GRADE_ID.format("basic_block"): 25}
            elif student == "carol":
                assert got == dict.fromkeys(parts, 0)
            else:
                assert got == parts
        assert gb.find_student("carol").id == "carol"  # a student missing from the db is added, as autograde does


def test_feedback_reaches_the_student_through_nbgraders_exchange(graded):
    tmp, course, _ = graded
    written = course / "feedback" / "bob" / NAME / f"{Path(NOTEBOOK).stem}.html"
    text = written.read_text()
    assert "Score: 95 / 100" in text and "failed" in text and str(course) not in text
    assert written.stat().st_mode & 0o044 == 0o044  # readable by students, as generate_feedback leaves it
    assert (written.parent / "timestamp.txt").read_text() == "2026-12-01 10:00:00.000000 UTC"
    nbgrader(course, "release_feedback", NAME)
    nbgrader(tmp / "student", "fetch_feedback", NAME)
    fetched = list((tmp / "student" / NAME / "feedback").glob(f"*/{Path(NOTEBOOK).stem}.html"))
    assert len(fetched) == 1 and "Score: 100 / 100" in fetched[0].read_text()


def test_a_course_without_the_assignment_is_refused_before_grading(tmp_path):
    (tmp_path / "submitted" / "ann" / NAME).mkdir(parents=True)
    run = autograde(tmp_path)
    assert run.returncode == 2
    assert f"nbgrader generate_assignment {NAME}" in run.stderr and "preparing the reference" not in run.stderr


def test_every_part_table_lists_each_check_once_and_the_notebooks_carry_its_cells():
    for assignment in ASSIGNMENTS.values():
        checklist = Checklist.of(assignment)
        parts = part_points(checklist.parts, checklist.columns())
        assert sum(parts.values()) == sum(c[2] for c in checklist.columns())
        assert grade_cells(nbformat.read(str(assignment.source), 4)) == parts, assignment.name
        student = nbformat.read(str(assignment.student_notebook), 4)
        assert grade_cells(student) == parts, assignment.name
        assert all(c.metadata["nbgrader"]["locked"] for c in student.cells if c.metadata.get("nbgrader", {})
                   .get("grade"))


@pytest.mark.parametrize("parts, words", [
    ({}, "missing"),
    ({"a": ["stem", "stem"]}, "listed twice ['stem']"),
    ({"a": ["stem", "no_such_check"]}, "unknown ['no_such_check']"),
])
def test_a_parts_table_that_misses_or_repeats_a_check_is_refused(parts, words):
    columns = [("stem", "the stem", 5), ("stages", "the stages", 10)]
    with pytest.raises(CourseError, match=r"PARTS must list every check once") as caught:
        part_points(parts, columns)
    assert words in str(caught.value)


def test_what_came_through_the_students_side_is_read_with_care(tmp_path):
    """timestamp.txt and submission_secret.txt pass through the exchange, where students write: a time that is no
    time is left out, and a link or a FIFO is never followed nor waited on."""
    from autograder.nbgrader_course import _small_file, _timestamp

    (tmp_path / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    assert _timestamp(tmp_path) == {"timestamp": "2026-12-01 10:00:00.000000 UTC"}
    for text in ("not a time", "9" * 50, ""):
        (tmp_path / "timestamp.txt").write_text(text)
        assert _timestamp(tmp_path) == {}
    (tmp_path / "secret").write_text("x" * 10_000)
    (tmp_path / "link").symlink_to(tmp_path / "timestamp.txt")
    os.mkfifo(tmp_path / "fifo")
    assert [_small_file(tmp_path / n) for n in ("secret", "link", "fifo", "absent")] == [None] * 4


def test_two_student_ids_that_would_share_result_files_are_refused(tmp_path):
    """jo+1 and jo_1 make the same file name: one would overwrite the other's results and gradebook entry."""
    from autograder.nbgrader_course import Course

    for who in ("jo+1", "jo_1", "ann"):
        (tmp_path / "submitted" / who / NAME).mkdir(parents=True)
    checklist = Checklist.of(ASSIGNMENT)
    with pytest.raises(CourseError, match=r"jo\+1 and jo_1"):
        Course(tmp_path, ASSIGNMENT, checklist, checklist.columns()).submissions()
