"""Load: find each student's submission and take only its definitions, by parsing (nothing is executed here).

Kept at top level: imports, functions, classes, and assignments whose value calls nothing (constants like
`NUM_CLASSES = 10` or a VGG config list). Everything else — training loops, prints, plots, `!`/`%` lines,
`if __name__ == "__main__":` — is blanked, keeping line numbers, so grading never re-runs a student's training
and tracebacks still point at the student's own lines. A notebook cell that does not parse is skipped with a note
(a broken training cell must not cost the model); a .py file that does not parse cannot be graded.
"""
import ast
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_SUBMISSION_BYTES = 20 * 2**20
RUNNING_CELL_MAGICS = ("%%time", "%%capture")  # cell magics whose body is still Python


class LoadError(ValueError):
    """The submission cannot be read; the message is for the student."""


@dataclass
class Submission:
    student: str
    path: Path


@dataclass
class Definitions:
    chunks: list  # [{"label": "cell 7" or a file name, "code": text with non-definitions blanked}]
    notes: list = field(default_factory=list)  # what was skipped for a reason the student should know


def _calls_nothing(node) -> bool:
    return not any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)) for n in ast.walk(node))


def is_definition(stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value is not None and _calls_nothing(stmt.value)
    return False


def definitions_only(code: str, label: str) -> str:
    """`code` with every top-level statement that is not a definition blanked out (line numbers kept).
    Raises SyntaxError."""
    lines = code.splitlines()
    keep = [False] * len(lines)
    for stmt in ast.parse(code, filename=label).body:
        if is_definition(stmt):
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
            for i in range(first - 1, stmt.end_lineno):
                keep[i] = True
    return "\n".join(line if k else "" for line, k in zip(lines, keep)) + "\n"


def _without_magics(source: str):
    """A cell's source with IPython-only lines blanked; None for a cell magic whose body is not Python."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if not lines[0].lstrip().startswith(RUNNING_CELL_MAGICS):
            return None
        lines[0] = ""
    return "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in lines)


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise LoadError(f"{path.name} is empty")
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise LoadError(f"{path.name} is {len(raw) / 2**20:.0f} MB; the limit is {MAX_SUBMISSION_BYTES >> 20} MB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LoadError(f"{path.name} is not a text file (it is not UTF-8): submit the .ipynb or .py itself")


def from_python(path: Path) -> Definitions:
    code = _text(path)
    try:
        return Definitions([{"label": path.name, "code": definitions_only(code, path.name)}])
    except SyntaxError as exc:
        raise LoadError(f"{path.name} has a syntax error at line {exc.lineno}: {exc.msg}"
                        f"{_shown(exc)}. Fix it so the file runs.") from None


def from_notebook(path: Path) -> Definitions:
    import nbformat

    text = _text(path)
    advice = "Re-download it from Jupyter (File > Download) and submit that file."
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path.name} is not a valid notebook (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
                        f"{advice}") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for schema trouble
        raise LoadError(f"{path.name} is not a valid notebook ({type(exc).__name__}). {advice}") from None
    result = Definitions([])
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        source = _without_magics(cell.source)
        if source is None:
            continue
        label = f"cell {index}"
        try:
            result.chunks.append({"label": label, "code": definitions_only(source, label)})
        except SyntaxError as exc:
            result.notes.append(f"{label} was skipped: syntax error at line {exc.lineno}: {exc.msg}{_shown(exc)}")
    return result


def _shown(exc: SyntaxError) -> str:
    return f" ('{exc.text.strip()}')" if exc.text and exc.text.strip() else ""


def definitions(path: Path) -> Definitions:
    if path.suffix == ".ipynb":
        return from_notebook(path)
    if path.suffix == ".py":
        return from_python(path)
    raise LoadError(f"{path.name}: submit a .ipynb notebook or a .py file")


def pick_file(folder: Path, preferred: list) -> Path:
    """The submission inside a student's folder: a preferred name first, else its only notebook or .py file."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb")
             and ".ipynb_checkpoints" not in p.parts and not p.name.startswith(".")]
    for name in preferred:
        for p in files:
            if p.name == name:
                return p
    if len(files) == 1:
        return files[0]
    if not files:
        raise LoadError(f"the folder {folder.name} holds no .ipynb or .py file")
    raise LoadError(f"the folder {folder.name} holds several candidates ({', '.join(sorted(p.name for p in files))}); "
                    f"name the one to grade {' or '.join(preferred)}")


def _safe_extract(archive: Path, into: Path):
    with zipfile.ZipFile(archive) as z:
        total = sum(i.file_size for i in z.infolist())
        if total > 50 * MAX_SUBMISSION_BYTES:
            raise LoadError(f"{archive.name} unpacks to {total >> 20} MB; too large")
        for info in z.infolist():
            target = (into / info.filename).resolve()
            if not target.is_relative_to(into.resolve()) or info.filename.startswith("__MACOSX"):
                continue
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def find_submissions(paths, scratch: Path) -> list:
    """Submission per student from files, folders (one per student) and zips of either."""
    found = []
    for raw in map(Path, paths):
        if raw.suffix == ".zip" and raw.is_file():
            into = Path(tempfile.mkdtemp(prefix=raw.stem + "-", dir=scratch))
            _safe_extract(raw, into)
            entries = [p for p in into.iterdir() if not p.name.startswith(("__MACOSX", "."))]
            if len(entries) == 1 and entries[0].is_dir() and not any(
                    p.suffix in (".py", ".ipynb") for p in entries[0].iterdir() if p.is_file()):
                entries = list(entries[0].iterdir())  # a zip of one folder that holds the students
            found += [Submission(p.stem if p.is_file() else p.name, p) for p in sorted(entries)
                      if p.is_dir() or p.suffix in (".py", ".ipynb")]
        elif raw.is_dir():
            found.append(Submission(raw.name, raw))
        else:
            found.append(Submission(raw.stem, raw))
    return found
