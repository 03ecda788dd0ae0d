"""Load: find each student's submission and take only its definitions, by parsing (nothing is executed here).

Kept at top level: imports, functions, classes, and assignments that call nothing (constants like
`NUM_CLASSES = 10` or a VGG config list) or whose value is one call of a constructor in SAFE_CONSTRUCTORS whose
arguments call nothing, as ResNet code in the wild writes `conv3x3 = partial(Conv2dAuto, kernel_size=3)`. Such a
callee counts only where the submission imports it from its module (`from functools import partial`, `import
functools`, aliases too) and binds that name no other way anywhere, since a student's own `def partial` could train
(allowed_constructors). Everything else — model construction (`model = resnet18()`, `nn.Linear(...)`), training
loops, prints, plots, `!`/`%` lines, `if __name__ == "__main__":` — is blanked, keeping line numbers, so grading
never re-runs a student's training and tracebacks still point at the student's own lines. A notebook cell that
does not parse is skipped with a note (a broken training cell must not cost the model); a .py file that does not
parse cannot be graded.

Every submission is hostile input. Files are read without following a symbolic link, without blocking on a FIFO
or device, only when regular, and never past MAX_SUBMISSION_BYTES; folders are walked without following
symlinked folders. (A file or folder named on the command line is the instructor's own path and is taken as
given.) Zips are unpacked by hand: only .ipynb and .py entries are written, never as links, never outside the
scratch folder (entries escaping the zip are dropped, `__MACOSX` and dot-files ignored), and a zip that is
corrupt, too large or has too many entries becomes an `error` for its student instead of stopping the batch.

Who a zip belongs to: a zip whose top level (after unwrapping one single wrapping folder) holds only folders is
a class zip, one student per folder; any other zip is ONE student's submission named after the zip, its files
picked like a folder's. So `mallory.zip` holding `carol.py` is mallory's work, never carol's.
"""
import ast
import errno
import json
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .text import code_span

MAX_SUBMISSION_BYTES = 20 * 2**20
MAX_ZIP_BYTES = 50 * MAX_SUBMISSION_BYTES  # declared size of everything in one zip
MAX_ZIP_ENTRIES = 2000
GRADABLE = (".py", ".ipynb")
STUB = "fill in here"
STUB_RAISED = re.compile(r"NotImplementedError\(\s*[rRuU]?[\"']{1,3}fill in here")  # a stub, not its comment
RUNNING_CELL_MAGICS = ("%%time", "%%capture")  # cell magics whose body is still Python
# The constructors a top-level assignment may call, by the module that must provide them: each only stores its
# arguments and calls none of them (partial binds arguments to a callable; namedtuple makes a tuple class from field
# names). No nn.* layer (it allocates weights) and no builtin such as list(range(...)) (it runs an iteration).
SAFE_CONSTRUCTORS = {"functools": ("partial",), "collections": ("namedtuple",)}


class LoadError(ValueError):
    """The submission cannot be read; the message is for the student."""


@dataclass
class Submission:
    student: str
    path: Path
    error: str = None  # why nothing of this student's can be graded (a broken zip, no notebook or .py in it)
    from_class_zip: bool = False  # named after a folder inside a zip: such a name yields to one given directly


@dataclass
class Definitions:
    chunks: list  # [{"label": "cell 7" or a file name, "code": text with non-definitions blanked}]
    notes: list = field(default_factory=list)  # what was skipped for a reason the student should know


def _calls_nothing(node) -> bool:
    return not any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)) for n in ast.walk(node))


def _calls_only_allowed(value, allowed) -> bool:
    """`value` is one call of a callee spelled as in `allowed` (`partial`, `functools.partial`) whose arguments,
    positional, keyword and starred, call nothing."""
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        spelled = f"{func.value.id}.{func.attr}"
    else:
        spelled = func.id if isinstance(func, ast.Name) else None
    return spelled in allowed and all(map(_calls_nothing, value.args + value.keywords))


def is_definition(stmt, allowed=frozenset()) -> bool:
    """Whether the top-level statement is kept; `allowed` is allowed_constructors' answer for the submission."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        rest = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target, stmt.annotation]
        # targets and an annotation run too: `CONFIG[build()] = 1` and `x: train() = 1` are calls
        return all(map(_calls_nothing, rest)) and (_calls_nothing(stmt.value)
                                                   or _calls_only_allowed(stmt.value, allowed))
    return False


def _bindings(node):
    """(name, {callee spelling: constructor} it makes callable, empty when it is bound another way) for each
    name the node binds."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            if isinstance(node, ast.Import) and alias.name in SAFE_CONSTRUCTORS:
                yield name, {f"{name}.{c}": c for c in SAFE_CONSTRUCTORS[alias.name]}
            elif isinstance(node, ast.ImportFrom) and not node.level and alias.name in SAFE_CONSTRUCTORS.get(
                    node.module, ()):
                yield name, {name: alias.name}
            elif alias.name != "*":
                yield name, {}
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name, {}
    elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        yield node.id, {}
    elif isinstance(node, ast.arg):
        yield node.arg, {}
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        yield node.name, {}
    elif isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest, {}


def allowed_constructors(sources) -> frozenset:
    """The callee spellings (`partial`, `functools.partial`, an alias) that is_definition may keep a call of, for
    a submission of these sources (every cell of a notebook, as names bound in one cell hold in the next). A name
    counts only if every binding of it, anywhere and in any scope, is an import of SAFE_CONSTRUCTORS; it is refused
    if it is also a def, class, assignment, argument or another import, if a star import could rebind it, or if the
    constructor's attribute is ever assigned (`functools.partial = train`). This keeps grading from calling the
    student's code by accident or plain shadowing; containing a hostile file (a class body runs when defined) is
    the sandbox's job. Sources that do not parse are never run, so they bind nothing."""
    callees, other, written, star = {}, set(), set(), False
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for node in ast.walk(tree):
            star = star or isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
            if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
                written.add(node.attr)
            for name, made in _bindings(node):
                if made:
                    callees.setdefault(name, {}).update(made)
                else:
                    other.add(name)
    if star:
        return frozenset()
    return frozenset(spelled for name, made in callees.items() if name not in other
                     for spelled, constructor in made.items() if constructor not in written)


def definitions_only(code: str, label: str, allowed=frozenset()) -> str:
    """`code` with every top-level statement that is not a definition blanked out (line numbers kept); `allowed`
    is allowed_constructors' answer for the whole submission (none by default).
    Raises SyntaxError, also for code nested too deeply to parse (the parser's own MemoryError/RecursionError)."""
    lines = code.splitlines()
    keep = [False] * len(lines)
    try:
        body = ast.parse(code, filename=label).body
    except (MemoryError, RecursionError):
        raise SyntaxError("too deeply nested to parse") from None
    spans = [(is_definition(stmt, allowed),
              range(min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1,
                    stmt.end_lineno)) for stmt in body]
    # Lines are kept whole, so a definition sharing a line with a call (`EPOCHS = 10; train(model, EPOCHS)`) would
    # run the call: such a definition is blanked with it.
    blanked = {i for definition, span in spans if not definition for i in span}
    for definition, span in spans:
        if definition and blanked.isdisjoint(span):
            for i in span:
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


def _too_big(name: str, size: int) -> str:
    return f"{name} is {size / 2**20:.0f} MB; the limit is {MAX_SUBMISSION_BYTES >> 20} MB"


def _read(path: Path) -> bytes:
    """The file's bytes: never through a symbolic link (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK), only a
    regular file, never more than MAX_SUBMISSION_BYTES. A link is refused rather than followed, since it could
    point at the reference solution or at a file of the grader's that the student must not see."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError(f"{path.name} is a symbolic link: submit the file itself, not a link to it") from None
        raise LoadError(f"{path.name} cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LoadError(f"{path.name} is not a regular file: submit the .ipynb or .py itself")
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise LoadError(_too_big(path.name, info.st_size))
        chunks, left = [], MAX_SUBMISSION_BYTES + 1  # the file may grow after fstat
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        if len(raw) > MAX_SUBMISSION_BYTES:
            raise LoadError(_too_big(path.name, len(raw)))
        return raw
    finally:
        os.close(fd)


def _text(path: Path) -> str:
    raw = _read(path)
    if not raw.strip():
        raise LoadError(f"{path.name} is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LoadError(f"{path.name} is not a text file (it is not UTF-8): submit the .ipynb or .py itself")


def _not_run(code: str, label: str, allowed=frozenset(), most=5):
    """A note naming the top-level statements of a .py that grading does not run (a checkpoint load, a training
    loop, a call at import), or None: the docstring and the `if __name__ == "__main__":` block go unmentioned."""
    lines = code.splitlines()
    try:
        body = ast.parse(code).body
    except (SyntaxError, MemoryError, RecursionError):
        return None
    skipped = [stmt for stmt in body if not is_definition(stmt, allowed) and not isinstance(stmt, ast.Pass)
               and not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
               and not (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
                        and isinstance(stmt.test.left, ast.Name) and stmt.test.left.id == "__name__")]
    if not skipped:
        return None
    shown = "; ".join(f"line {s.lineno}: {lines[s.lineno - 1].strip()[:60]}" for s in skipped[:most])
    more = f"; and {len(skipped) - most} more" if len(skipped) > most else ""
    return f"{label}: not run when grading, which reads definitions only: {shown}{more}"


def from_python(path: Path) -> Definitions:
    code = _text(path)
    allowed = allowed_constructors([code])
    try:
        chunks = [{"label": path.name, "code": definitions_only(code, path.name, allowed)}]
    except SyntaxError as exc:
        raise LoadError(f"{path.name} has a syntax error{_at(exc)}: {exc.msg}"
                        f"{_shown(exc)}. Fix it so the file runs.") from None
    note = _not_run(code, path.name, allowed)
    return Definitions(chunks, [note] if note else [])


def from_notebook(path: Path) -> Definitions:
    import nbformat

    text = _text(path)
    advice = "Re-download it from Jupyter (File > Download) and submit that file."
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path.name} is not a valid notebook (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
                        f"{advice}") from None
    except RecursionError:
        raise LoadError(f"{path.name} is not a valid notebook (nested too deeply). {advice}") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for schema trouble
        raise LoadError(f"{path.name} is not a valid notebook ({type(exc).__name__}). {advice}") from None
    cells = [(f"cell {index}", _without_magics(cell.source)) for index, cell in enumerate(nb.cells, start=1)
             if cell.cell_type == "code"]
    cells = [(label, source) for label, source in cells if source is not None]
    allowed = allowed_constructors(source for _, source in cells)
    result = Definitions([])
    for label, source in cells:
        try:
            result.chunks.append({"label": label, "code": definitions_only(source, label, allowed)})
        except SyntaxError as exc:
            result.notes.append(f"{label} was skipped: syntax error{_at(exc)}: {exc.msg}{_shown(exc)}")
    return result


def _at(exc: SyntaxError) -> str:
    return f" at line {exc.lineno}" if exc.lineno else ""


def _shown(exc: SyntaxError) -> str:
    return f" ('{exc.text.strip()}')" if exc.text and exc.text.strip() else ""


def definitions(path: Path) -> Definitions:
    if path.suffix == ".ipynb":
        return from_notebook(path)
    if path.suffix == ".py":
        return from_python(path)
    raise LoadError(f"{path.name}: submit a .ipynb notebook or a .py file")


MAX_DEPTH = 16  # folders below a submission's top that are walked: 1,200 nested folders must not reach recursion


def tree(folder: Path, skip=lambda name: False):
    """(path, lstat mode) of everything under `folder`, in order, without following symbolic links and never more
    than MAX_DEPTH folders deep; folders whose name `skip` says are left out."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        depth = len(Path(root).relative_to(folder).parts)
        dirs[:] = [] if depth >= MAX_DEPTH else sorted(d for d in dirs if not skip(d))
        for name in sorted(dirs + files):
            path = Path(root, name)
            try:
                yield path, os.lstat(path).st_mode
            except OSError:
                continue


def _candidates(folder: Path) -> list:
    """Every .ipynb or .py in the folder that is a regular file or a symbolic link (kept, so that it can be refused
    with a reason), walked without following symlinked folders; dot-folders (.ipynb_checkpoints, .git) and
    dot-files are skipped, and FIFOs, sockets and devices are never candidates."""
    return [path for path, mode in tree(folder, lambda d: d.startswith((".", "__MACOSX")))
            if not path.name.startswith(".") and path.suffix in GRADABLE and (stat.S_ISREG(mode) or stat.S_ISLNK(mode))]


def _link_error(path: Path, folder: Path) -> LoadError:
    """Says that it is a link, and whether it leads outside the submission, but never where or what it holds."""
    inside = Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    where = "" if inside else " that leads outside your submission"
    return LoadError(f"{code_span(path.relative_to(folder).as_posix())} is a symbolic link{where}: submit the file "
                     f"itself, not a link to it")


def _stubs(path: Path):
    """How many 'fill in here' stubs the file's code still holds: each stub of the release raises
    NotImplementedError("fill in here: ..."), so those are counted, not the `# fill in here` comments above them
    that a finished file keeps, nor a notebook's text cells. None when the file cannot be read, is not a notebook's
    JSON, or is a link."""
    if path.is_symlink():
        return None
    try:
        text = _text(path)
    except LoadError:
        return None
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text)["cells"]
            text = "\n".join("".join(c["source"]) for c in cells if c.get("cell_type") == "code")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None  # not a notebook: it cannot be graded, so any other file is better
    return len(STUB_RAISED.findall(text))


def _why_not(path: Path, stubs, best: Path, folder: Path) -> str:
    """Why `path` was not graded in favour of `best`, for the student."""
    where = "the same folder" if path.parent == best.parent else "your submission"
    where = f"{code_span(path.relative_to(folder).as_posix())} in {where}"
    if path.is_symlink():
        return f"{where} is a symbolic link"
    if stubs is None:
        return f"{where} cannot be read"
    return f"{where} still has {stubs} '{STUB}' stub{'s' * (stubs != 1)}"


def pick_file(folder: Path, preferred: list):
    """(the file to grade in a student's folder, a note for the student or None).

    The candidates are the files with a preferred name (at any depth) when there are any, else every .ipynb and
    .py. Among them the one with the fewest 'fill in here' stubs wins, so that a filled-in notebook beats the
    untouched skeleton beside it; on a tie, preferred names first in the given order. Other files never compete
    with a preferred name, since a helper such as utils.py has no stubs either. Without a preferred name, one file
    must have strictly fewer stubs than every other, readable, file; else the choice is the student's to make."""
    files = _candidates(folder)
    named = sorted((p for p in files if p.name in preferred),
                   key=lambda p: (preferred.index(p.name), len(p.parts), str(p)))
    pool = named or files
    if not pool:
        raise LoadError(f"the folder {code_span(folder.name)} holds no .ipynb or .py file")
    stubs = {p: _stubs(p) for p in pool}
    rank = {p: (stubs[p] is None, stubs[p] or 0) for p in pool}
    best = min(pool, key=lambda p: rank[p])  # min keeps the first of equals: the given order
    if best.is_symlink():
        raise _link_error(best, folder)
    if not named and any(stubs[p] is None or rank[p] <= rank[best] for p in pool if p != best):
        raise LoadError(f"the folder {code_span(folder.name)} holds several candidates "
                        f"({', '.join(code_span(n) for n in sorted(p.name for p in files))}); name the one to grade "
                        f"{' or '.join(preferred)}")
    passed_over = pool[:pool.index(best)] if named else [p for p in pool if p != best]
    if not passed_over:
        return best, None
    why = "; ".join(_why_not(p, stubs[p], best, folder) for p in passed_over[:3])
    return best, f"Graded {code_span(best.relative_to(folder).as_posix())}: {why}{'; ...' * (len(passed_over) > 3)}."


def _entry_parts(name: str):
    """The zip entry's path as folder names; None for one that would escape the zip, or is ignored (__MACOSX,
    dot-files and dot-folders)."""
    name = name.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or not parts or ".." in parts:
        return None
    if any(p.startswith((".", "__MACOSX")) for p in parts):
        return None
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _too_many(name: str, count: str) -> str:
    return f"{name} holds {count} entries; the limit is {MAX_ZIP_ENTRIES:,}: zip only your notebook or .py file"


def _central_directory_ok(archive: Path) -> bool:
    """Whether the zip's index is small enough to be read: zipfile builds one object per entry before anything
    can count them, so a crafted index of millions of tiny entries is refused by its size first (1 KiB an entry
    is far more than a real zip's name and fields take)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private: without it, zipfile's own reading decides
    if end_record is None:
        return True
    with open(archive, "rb") as f:
        end = end_record(f)
    return not end or end[zipfile._ECD_SIZE] <= MAX_ZIP_ENTRIES * 1024


def _members(z: zipfile.ZipFile, name: str) -> list:
    """[(parts, info)] of the zip's usable entries, after refusing a zip with too many entries or too large."""
    infos = z.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise LoadError(_too_many(name, f"{len(infos):,}"))
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_BYTES:
        raise LoadError(f"{name} unpacks to {total >> 20:,} MB; the limit is {MAX_ZIP_BYTES >> 20:,} MB: zip only "
                        f"your notebook or .py file")
    return [(parts, info) for info in infos if (parts := _entry_parts(info.filename))]


def _top_level(members: list) -> dict:
    """{name at the top of the zip: whether it is a folder}."""
    top = {}
    for parts, info in members:
        top[parts[0]] = top.get(parts[0], False) or len(parts) > 1 or info.is_dir()
    return top


def _students(members: list, stem: str):
    """({student: [(parts inside their folder, info)]}, whether it is a class zip), by the rule in this module's
    docstring."""
    top = _top_level(members)
    if len(top) == 1 and all(top.values()):  # one wrapping folder
        members = [(parts[1:], info) for parts, info in members if len(parts) > 1]
        top = _top_level(members)
    if top and all(top.values()):  # only folders: a class zip
        return {name: [(parts[1:], info) for parts, info in members if parts[0] == name and len(parts) > 1]
                for name in sorted(top)}, True
    return {stem: members}, False


def _copy(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path):
    """Write one entry as a new regular file (never a link, never over an existing file), bounded in size.
    A damaged entry (bad CRC, truncated) raises zipfile's error, which refuses the whole zip."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    written = 0
    try:
        with os.fdopen(fd, "wb") as dst, z.open(info) as src:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > MAX_SUBMISSION_BYTES:  # more than it declared
                    raise LoadError(_too_big(target.name, written))
                dst.write(chunk)
    except LoadError:
        target.unlink()
        raise


def _unpack(z: zipfile.ZipFile, members: list, into: Path) -> tuple:
    """Write the gradable entries under `into`: (how many were written, why each other entry was not)."""
    into.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    for parts, info in members:
        if info.is_dir():
            continue
        shown = "/".join(parts)
        if _is_link(info):
            skipped.append(f"{shown} is a symbolic link")
        elif Path(parts[-1]).suffix not in GRADABLE:
            skipped.append(f"{shown} is not a notebook or .py file")
        elif info.file_size > MAX_SUBMISSION_BYTES:
            skipped.append(_too_big(shown, info.file_size))
        else:
            try:
                _copy(z, info, into.joinpath(*parts))
                written += 1
            except LoadError as exc:
                skipped.append(str(exc))
            except OSError as exc:  # a name twice, a file where a folder is, a name too long
                skipped.append(f"{shown} could not be unpacked ({exc.strerror or exc})")
    return written, skipped


def _nothing_to_grade(where: str, skipped: list) -> str:
    why = "; ".join(skipped[:5]) + ("; ..." if len(skipped) > 5 else "") if skipped else "it is empty"
    return f"nothing to grade in {where}: {why}. Submit your .ipynb notebook or .py file."


def from_zip(archive: Path, scratch: Path) -> list:
    """Submissions of the students in a zip. Never raises: a zip that cannot be unpacked becomes one Submission,
    named after the zip, with an error for the student."""
    scratch_dir = Path(tempfile.mkdtemp(prefix=archive.stem + "-", dir=scratch))
    found = []
    try:
        if not _central_directory_ok(archive):
            raise LoadError(_too_many(archive.name, "too many"))
        with zipfile.ZipFile(archive) as z:
            students, of_class = _students(_members(z, archive.name), archive.stem)
            for student, members in students.items():
                folder = scratch_dir / student
                written, skipped = _unpack(z, members, folder)
                where = f"your folder {student}/ in {archive.name}" if of_class else archive.name
                found.append(Submission(student, folder, None if written else _nothing_to_grade(where, skipped),
                                        of_class))
    except LoadError as exc:
        return [Submission(archive.stem, archive, str(exc))]
    except zipfile.BadZipFile as exc:
        return [Submission(archive.stem, archive, f"{archive.name} is not a readable zip file ({exc}): zip your "
                                                  f"work again and resubmit it")]
    except Exception as exc:  # encrypted, unsupported compression, zlib errors, ...: never stop the batch
        return [Submission(archive.stem, archive, f"{archive.name} could not be unpacked ({type(exc).__name__}: "
                                                  f"{str(exc)[:200]}): zip your work again and resubmit it")]
    return found


def find_submissions(paths, scratch: Path) -> list:
    """Submission per student from files, folders (one per student) and zips (a class's or one student's). Paths
    given here are the instructor's, so a link among them is followed once, here; nothing inside them is."""
    found = []
    for raw in map(Path, paths):
        if raw.suffix == ".zip" and raw.is_file():
            found += from_zip(raw, scratch)
        elif raw.is_dir():
            found.append(Submission(raw.name, raw.resolve()))
        else:
            found.append(Submission(raw.stem, raw.resolve()))
    return found
