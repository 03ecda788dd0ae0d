"""Check: an assignment's hidden pytest checks, run in the grading process on the rebuilt models.

Each check is a pytest test with a `points(n)` marker. It sees one fixture, `submission` (a Graded: the rebuilt
models, or why each is missing, plus the training run on demand). A failed check reports only what it raised —
CheckFailed's module / expected / got / next step, or the student's own model error — never a traceback or a
line of the check's source (pytest runs with plain asserts and no tracebacks).
"""
import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class CheckFailed(AssertionError):
    def __init__(self, module, expected, got, next_step):
        self.module, self.expected, self.got, self.next_step = module, expected, got, next_step
        super().__init__(f"{module}: expected {expected}, got {got}. Next step: {next_step}")


@dataclass(frozen=True)
class Missing:
    """Why a model is unavailable: the grader's words (`message`), and apart from them what the student's own code
    said (`said`: bounded plain text, shown as quoted code so it never passes for the grader's words)."""
    message: str
    said: str = ""

    def __str__(self):
        return self.message


class Unavailable(Exception):
    """A model the check needs could not be built, exported or rebuilt; `missing` says why."""

    def __init__(self, missing):
        self.missing = missing if isinstance(missing, Missing) else Missing(str(missing))
        super().__init__(self.missing.message)


def expect(ok, module, expected, got, next_step):
    if not ok:
        raise CheckFailed(module, expected, got, next_step)


@dataclass
class Result:
    name: str
    title: str
    score: float
    max_score: float
    passed: bool
    message: str
    said: str = ""  # what the student's code said (an error message), kept apart from the grader's words


@dataclass
class Graded:
    """What the checks see of one submission."""
    models: dict  # export name -> Rebuilt, or the Missing reason it is unavailable
    training: object = None  # () -> the training run's result (dict), run once on first call
    reference: "Graded" = None  # the reference solution's Graded, for counts and shapes to compare with
    reference_training: dict = None
    parameter_shapes: dict = field(default_factory=dict)  # export name -> {parameter: shape}, listed even when
    # the model could not run (None when unreadable)
    found: list = field(default_factory=list)  # what the running check noticed, for its feedback

    def model(self, name):
        value = self.models.get(name, Missing(f"{name} was not exported"))
        if isinstance(value, (str, Missing)):
            raise Unavailable(value)
        return value

    def available(self, name) -> bool:
        return name in self.models and not isinstance(self.models[name], (str, Missing))

    def note(self, text):
        self.found.append(text)


def _pytest_args(checks_file: Path) -> list:
    """pytest's arguments for one assignment's checks. The root is the folder above the assignment's, so each
    checks.py is imported under its own name (resnet50_cifar10.checks): one process may grade several."""
    return [str(checks_file), "-q", "-p", "no:cacheprovider", "--import-mode=importlib", "-o", "python_files=*.py",
            "-o", "addopts=", "--rootdir", str(checks_file.parent.parent)]


def _describe(item):
    """(name, title, points) of a check: its name without test_, its docstring's first line, its marker."""
    return (item.name.removeprefix("test_"), (item.obj.__doc__ or item.name).strip().splitlines()[0],
            item.get_closest_marker("points").args[0])


class _Markers:
    def pytest_configure(self, config):
        config.addinivalue_line("markers", "points(n): what the check is worth")


class _Plugin(_Markers):
    def __init__(self, graded):
        self.graded, self.results = graded, []
        self.first_for = {}  # a Missing reason -> the title of the first check that showed it in full

    @pytest.fixture
    def submission(self):
        return self.graded

    def pytest_runtest_setup(self, item):
        self.graded.found = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        if report.when == "call" or (report.when == "setup" and report.failed):
            name, title, points = _describe(item)
            exc = call.excinfo.value if call.excinfo else None
            said = ""
            if exc is None:
                message = "; ".join(self.graded.found) or "ok"
            elif isinstance(exc, Unavailable):  # one message per cause: later checks point at the first
                if exc.missing in self.first_for:
                    message = f"not graded: the same cause as \u201c{self.first_for[exc.missing]}\u201d above"
                else:
                    self.first_for[exc.missing] = title
                    message, said = exc.missing.message, exc.missing.said
            elif isinstance(exc, CheckFailed):
                message = str(exc)
            else:  # the student's model raised while the check ran it
                message = (f"running your model raised {type(exc).__name__}: {str(exc)[:500]}. Next step: run "
                           "the notebook's sanity checks and fix the shape or argument the error names.")
            self.results.append(Result(name, title, points if exc is None else 0, points, exc is None, message, said))


def run_checks(checks_file: Path, graded: Graded) -> list:
    plugin = _Plugin(graded)
    # no unraisable-exception plugin: it runs two full gc.collect() at the end of each session, in a process that
    # holds torch: 0.4 s of every submission's 0.55 s of checks (measured on resnet_paper_cifar10's reference)
    args = _pytest_args(checks_file) + ["--assert=plain", "--tb=no", "-W", "ignore", "-p", "no:unraisableexception"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args, plugins=[plugin])
    if code == pytest.ExitCode.INTERRUPTED:  # pytest swallows Ctrl-C; the batch must see it
        raise KeyboardInterrupt
    return plugin.results


def collect_checks(checks_file: Path) -> list:
    """(name, title, points) of every check, without running any: the columns of grades.csv and the zero rows of
    a submission that could not be graded at all."""
    class Lister(_Markers):
        items = []

        def pytest_collection_modifyitems(self, items):
            self.items = [_describe(i) for i in items]

    lister = Lister()
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main(_pytest_args(checks_file) + ["--collect-only"], plugins=[lister])
    return lister.items
