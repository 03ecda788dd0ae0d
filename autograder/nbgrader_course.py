"""nbgrader: grade a course's collected submissions, and put the scores and feedback where nbgrader keeps them.

The mapping: a checks file's PARTS table names, per part of the assignment, the checks that score it. The instructor
notebook carries one autograded code cell per part (grade_id "graded_<part>", points = its checks' points, locked,
nothing to run), so `nbgrader generate_assignment` records it in the course's gradebook and the release carries it.
`autograde --nbgrader` sets each such cell's score to the points its checks earned, through nbgrader's own
Gradebook API, so `nbgrader export` and formgrader see them; the feedback goes to
feedback/<student>/<assignment>/<notebook>.html with the submission's timestamp and secret, where
`nbgrader release_feedback` picks it up for `nbgrader fetch_feedback`.
"""
import html
import os
import warnings
from pathlib import Path

import nbformat

from .load import Submission
from .sandbox import read_plain_file

GRADE_ID = "graded_{}"
CELL_SOURCE = ("# Graded when you submit: {points} points for this part, from the grader's checks of your code.\n"
               "# Nothing to write or run here.")
COPIED = ("timestamp.txt", "submission_secret.txt")  # what release_feedback reads beside the feedback file
MAX_SMALL_FILE = 4096  # bytes of either (nbgrader writes a timestamp and a 128-character secret)


class CourseError(ValueError):
    """The course cannot take this assignment's scores; the message says what the instructor should run."""


def part_points(parts: dict, columns: list) -> dict:
    """{grade id: points} of the parts; every check must be in exactly one part."""
    points = {name: p for name, _, p in columns}
    listed = [check for checks in parts.values() for check in checks]
    unknown = sorted(set(listed) - set(points))
    missing = [name for name in points if name not in listed]
    twice = sorted({c for c in listed if listed.count(c) > 1})
    if not parts or unknown or missing or twice:
        raise CourseError(f"the checks file's PARTS must list every check once: unknown {unknown}, missing "
                          f"{missing}, listed twice {twice}")
    return {GRADE_ID.format(part): sum(points[c] for c in checks) for part, checks in parts.items()}


def grade_cell(part: str, points: int) -> nbformat.NotebookNode:
    """The locked autograded cell of one part, as the instructor notebook carries it."""
    cell = nbformat.v4.new_code_cell(CELL_SOURCE.format(points=points))
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": points,
                                 "grade_id": GRADE_ID.format(part), "schema_version": 3}
    return cell


def grade_cells(nb) -> dict:
    """{grade id: points} of a notebook's grade cells."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def _config(root: Path):
    """The course's nbgrader configuration (its nbgrader_config.py, the instructor's own), rooted at `root`."""
    from traitlets.config import Config, PyFileConfigLoader

    config = Config()
    if (root / "nbgrader_config.py").is_file():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    return config


def _small_file(path: Path):
    """The text of a small regular file the submission holds (never through a link, never blocking), or None."""
    try:
        return read_plain_file(path, MAX_SMALL_FILE).decode()
    except (OSError, ValueError):
        return None


def _timestamp(folder: Path) -> dict:
    """The submission's time as collect recorded it, when it reads as one (it came through the students' side)."""
    from nbgrader.utils import parse_utc

    text = (_small_file(folder / "timestamp.txt") or "").strip()
    try:
        parse_utc(text)
    except (ValueError, TypeError, OverflowError):
        return {}
    return {"timestamp": text}


class Course:
    """An nbgrader course directory, for one assignment of the kit."""

    def __init__(self, root: Path, assignment, checklist, columns):
        from nbgrader.coursedir import CourseDirectory

        self.root, self.assignment = Path(root).resolve(), assignment
        self.notebook = Path(assignment.notebook).stem
        self.parts = checklist.parts
        self.points = part_points(self.parts, columns)
        self.coursedir = CourseDirectory(config=_config(self.root))
        self.folder = Path(self.coursedir.submitted_directory)

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.coursedir.db_url)

    def verify(self):
        """Refuse, before any grading, a course whose gradebook lacks this assignment's grade cells."""
        from nbgrader.api import MissingEntry

        name = self.assignment.name
        again = (f"put solutions/{name}/{self.assignment.notebook} in {self.root}/source/{name}/ and run "
                 f"`nbgrader generate_assignment {name}` there")
        if not (self.root / self.folder).is_dir():
            raise CourseError(f"{self.root} has no {self.folder}/ folder: collect the submissions first "
                              "(nbgrader collect or zip_collect)")
        with self.gradebook() as gb:
            try:
                notebook = gb.find_notebook(self.notebook, name)
            except MissingEntry:
                raise CourseError(f"the gradebook has no notebook {self.notebook} in an assignment {name}: {again}")
            cells = {c.name: c.max_score for c in notebook.grade_cells}
        if cells != self.points:
            raise CourseError(f"the gradebook's grade cells of {self.notebook} are {cells or 'none'}, the checks' "
                              f"parts {self.points}: {again}")

    def submissions(self) -> list:
        """One Submission per student folder submitted/<student>/<assignment>/, named by the student's id. Two ids
        that make the same file name (jo+1 and jo_1) are refused: renaming one would lose its gradebook id."""
        from .report import safe_name

        found, names = [], {}
        for student in sorted((self.root / self.folder).iterdir()):
            folder = student / self.assignment.name
            if folder.is_dir() and not student.is_symlink() and not folder.is_symlink():
                found.append(Submission(student.name, folder.resolve()))
                names.setdefault(safe_name(student.name), []).append(student.name)
        clashes = [ids for ids in names.values() if len(ids) > 1]
        if clashes:
            raise CourseError("these student ids would share their result files: " + "; ".join(
                " and ".join(ids) for ids in clashes) + ". Grade them apart (autograde --assignment ... --out)")
        return found

    def record(self, results: list, feedback) -> int:
        """Each result's part scores into the gradebook, and its feedback (`feedback(result)`, markdown) as HTML
        where nbgrader's feedback goes; returns how many students were recorded."""
        name = self.assignment.name
        with self.gradebook() as gb, warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy's notes on nbgrader's own API calls
            for result in results:
                folder = self.root / self.folder / result.student / name
                if not folder.is_dir():
                    continue  # graded from somewhere else: not this course's submission
                scores = {r.name: r.score for r in result.results}
                gb.update_or_create_student(result.student)
                gb.update_or_create_submission(name, result.student, **_timestamp(folder))
                for part, checks in self.parts.items():
                    grade = gb.find_grade(GRADE_ID.format(part), self.notebook, name, result.student)
                    grade.auto_score = float(sum(scores.get(c, 0) for c in checks))
                    grade.needs_manual_grade = False
                gb.db.commit()
                self._write_feedback(result, feedback(result), folder)
        return len(results)

    def _write_feedback(self, result, markdown: str, submitted: Path):
        import mistune  # nbconvert's markdown renderer; escape=True: a student's error text stays text

        from .report import write_atomically

        target = Path(self.coursedir.format_path(self.coursedir.feedback_directory, result.student,
                                                 self.assignment.name))
        title = html.escape(f"{self.assignment.name}: feedback")
        page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
                f"<body>\n{mistune.create_markdown(escape=True, plugins=['table'])(markdown)}\n</body></html>\n")
        write_atomically(target / f"{self.notebook}.html", page)
        os.chmod(target / f"{self.notebook}.html", 0o644)  # as generate_feedback leaves it: students read the copy
        for name in COPIED:
            text = _small_file(submitted / name)
            if text is not None:
                write_atomically(target / name, text)
                os.chmod(target / name, 0o644)
