"""Gradescope: one autograder.zip per assignment, and what runs inside Gradescope's container.

python -m autograder.gradescope [--out DIR] [--visibility CHECK=LEVEL ...] [NAME ...]
    writes DIR/<assignment>/autograder.zip (default DIR: out/gradescope; default: every assignment).

The zip, in Gradescope's layout (it is unpacked into /autograder/source/):
    setup.sh, run_autograder     at the root, executable
    autograder/, pyproject.toml  the kit's package
    solutions/<name>/            this assignment's declaration, hidden checks, reference module and notebook
                                 (no samples, nothing of another assignment)
    requirements.txt             the kit's requirements pinned to the versions of the venv that built the zip
    requirements-ranges.txt      the kit's requirements as written (setup.sh's fallback when a pin cannot install)
    gradescope.json              the assignment, its checks, and each check's visibility

Inside the container (bash scripts written below, both honouring AUTOGRADER_ROOT, default /autograder):
    setup.sh        once, as root: apt packages, a venv at source/.venv, torch's CPU build, the pinned
                    requirements; then a self-test that grades the reference (it must get full marks) and leaves
                    the reference's training run cached where the grader may trust it.
    run_autograder  per submission: `python -m autograder.gradescope --run-autograder ROOT` grades
                    ROOT/submission/ with `autograde` and writes ROOT/results/results.json; whatever happens, a
                    valid results.json is left behind (score 0 and a plain message when nothing could be graded).

Visibility of each check (Gradescope's per-test "visibility"): "visible" unless the checks file declares
GRADESCOPE_VISIBILITY = {check: level}, and --visibility CHECK=LEVEL (or *=LEVEL for every check) overrides both.
Check names are those of `autograde --list`'s assignment: the test function's name without `test_`.

This module imports nothing beyond the standard library at the top, so that run_autograder can always write its
results.json, even where the kit's requirements failed to install.
"""
import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

LEVELS = ("hidden", "after_due_date", "after_published", "visible")
CONFIG = "gradescope.json"
PINNED = "requirements.txt"
RANGES = "requirements-ranges.txt"
DEFAULT_OUT = Path("out") / "gradescope"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the same bytes from the same tree
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH = ("torch", "torchvision")
GRADING = ".grading"  # under source/: autograde's OUT, whose .cache keeps the reference's training run
GRADING_TIMEOUT = 3600  # seconds for one submission's `autograde` (Gradescope's own limit usually comes first)
SKIPPED_PARTS = ("__pycache__",)


# ---- building the zip ---------------------------------------------------------------------------------------------

def pinned_requirements(requirements: Path) -> tuple:
    """(text of requirements.txt with each requirement pinned to the version installed here, names not installed
    here). A local version label (`2.6.0+cpu`) is dropped: `==2.6.0` matches the CPU index's `2.6.0+cpu` as well
    as the default index's `2.6.0`."""
    lines = [f"# The kit's requirements pinned to the versions of the environment that built this zip (Python "
             f"{sys.version_info.major}.{sys.version_info.minor}); {RANGES} has the ranges.",
             "# Written by autograder.gradescope: do not edit; rebuild the zip instead."]
    missing = []
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line).group(0)
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            lines.append(line)
            continue
        lines.append(f"{name}=={version.split('+', 1)[0]}")
    return "\n".join(lines) + "\n", missing


def _checks_module_visibility(assignment) -> dict:
    """GRADESCOPE_VISIBILITY of the assignment's checks file, or {}."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"checks_{assignment.name}_visibility", assignment.checks)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "GRADESCOPE_VISIBILITY", {}) or {})


def resolve_visibility(checks: list, declared: dict, given: dict) -> dict:
    """{check: level} for every check: "visible", then the checks file's GRADESCOPE_VISIBILITY, then `given`
    ("*" sets every check; a check's own entry wins over "*"). Unknown checks and levels are a ValueError."""
    names = [c[0] for c in checks]
    visibility = {name: "visible" for name in names}
    for source, table in (("GRADESCOPE_VISIBILITY", declared), ("--visibility", given)):
        table = dict(table or {})
        for check, level in table.items():
            if level not in LEVELS:
                raise ValueError(f"{source}: {check}={level}: the level must be one of {', '.join(LEVELS)}")
            if check != "*" and check not in visibility:
                raise ValueError(f"{source}: no check named {check!r}; the checks are {', '.join(names)}")
        if "*" in table:
            visibility = {name: table["*"] for name in names}
        visibility.update({k: v for k, v in table.items() if k != "*"})
    return visibility


def _files(folder: Path, skip=()):
    """Every regular file under folder (sorted), without __pycache__, dot-files or the folders in `skip`."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (path.is_file() and not path.is_symlink() and not any(p.startswith(".") for p in rel.parts)
                and not any(p in SKIPPED_PARTS for p in rel.parts) and path.suffix != ".pyc"
                and not (rel.parts and rel.parts[0] in skip)):
            yield path


def _add(z: zipfile.ZipFile, name: str, data: bytes, executable=False):
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix: the mode bits below are read
    info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
    z.writestr(info, data)


def build(assignment, out_dir, visibility=None) -> Path:
    """Write out_dir/<assignment>/autograder.zip for `assignment` (a name or an Assignment); `visibility`:
    {check or "*": level} over the checks file's GRADESCOPE_VISIBILITY. Returns the zip's path."""
    from .assignments import ASSIGNMENTS, ROOT
    from .check import collect_checks

    if isinstance(assignment, str):
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"no assignment named {assignment!r}; there are {', '.join(sorted(ASSIGNMENTS))}")
        assignment = ASSIGNMENTS[assignment]
    checks = [list(c) for c in collect_checks(assignment.checks)]
    if not checks:
        raise ValueError(f"{assignment.checks}: no checks collected")
    config = {
        "assignment": assignment.name, "title": assignment.title,
        "module": assignment.module, "notebook": assignment.notebook,
        "checks": checks,  # [name, title, points]: the zero rows when nothing can be graded
        "visibility": resolve_visibility(checks, _checks_module_visibility(assignment), visibility),
    }
    pinned, missing = pinned_requirements(ROOT / "requirements.txt")
    if missing:
        print(f"gradescope: not installed here, so not pinned: {', '.join(missing)}", file=sys.stderr)
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", pinned, re.M))
    torch_pins = " ".join(f"{name}=={pins[name]}" for name in TORCH if name in pins) or " ".join(TORCH)

    entries = {  # zip name -> (bytes, executable)
        "setup.sh": (SETUP_SH.replace("@TORCH_PINS@", torch_pins).encode(), True),
        "run_autograder": (RUN_AUTOGRADER.encode(), True),
        CONFIG: ((json.dumps(config, indent=1) + "\n").encode(), False),
        PINNED: (pinned.encode(), False),
        RANGES: ((ROOT / "requirements.txt").read_bytes(), False),
        "pyproject.toml": ((ROOT / "pyproject.toml").read_bytes(), False),
    }
    package = ROOT / "autograder"
    for path in _files(package):
        entries[f"autograder/{path.relative_to(package).as_posix()}"] = (path.read_bytes(), False)
    for path in _files(assignment.folder, skip=("samples",)):
        entries[f"solutions/{assignment.name}/{path.relative_to(assignment.folder).as_posix()}"] = (
            path.read_bytes(), False)

    target = Path(out_dir) / assignment.name / "autograder.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".autograder.zip.")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            for name in sorted(entries):
                data, executable = entries[name]
                _add(z, name, data, executable)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def build_all(out_dir=DEFAULT_OUT, visibility=None) -> list:
    """A zip for every assignment; `visibility` as build's, a check name applying where the assignment has it."""
    from .assignments import ASSIGNMENTS

    return build_some(sorted(ASSIGNMENTS), out_dir, visibility)


def build_some(names, out_dir, visibility=None) -> list:
    from .assignments import ASSIGNMENTS
    from .check import collect_checks

    visibility = dict(visibility or {})
    have = {name: {c[0] for c in collect_checks(ASSIGNMENTS[name].checks)} for name in names}
    unknown = [c for c in visibility if c != "*" and not any(c in checks for checks in have.values())]
    if unknown:
        raise ValueError(f"--visibility: no check named {', '.join(unknown)} in "
                         f"{', '.join(names)} (see `autograde --list`)")
    return [build(name, out_dir, {c: level for c, level in visibility.items() if c == "*" or c in have[name]})
            for name in names]


# ---- inside Gradescope's container --------------------------------------------------------------------------------

def _write_json(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _scrubber(root: Path):
    """A function that removes the grading machine's paths from a text (whole path components only): the upload's
    own folder becomes relative, anything else of the machine's (the root, Python's prefix, home) `<grader>`."""
    submission = root / "submission"
    pairs = []
    for base in {root, root.resolve()}:
        pairs += [(f"{base / 'submission'}/", ""), (str(base / "submission"), "."), (str(base), "<grader>")]
    for other in {Path(sys.prefix), Path(sys.prefix).resolve(), Path.home()}:
        if len(other.parts) > 1 and not submission.is_relative_to(other):
            pairs.append((str(other), "<grader>"))
    pairs.sort(key=lambda p: -len(p[0]))
    patterns = [(re.compile(r"(?<![\w.-])" + re.escape(old) + ("" if old.endswith("/") else r"(?![\w.-])")), new)
                for old, new in pairs]

    def scrub(value):
        if isinstance(value, str):
            for pattern, new in patterns:
                value = pattern.sub(lambda _: new, value)
            return value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value
    return scrub


def not_graded(config: dict, message: str, seconds: float = 0.0) -> dict:
    """Gradescope's results for an upload of which nothing could be graded: 0, every check listed at 0."""
    tests = []
    for number, (name, title, points) in enumerate(config.get("checks", []), start=1):
        tests.append({"name": title, "number": str(number), "score": 0, "max_score": points, "status": "failed",
                      "output": message if number == 1 else "Not graded: nothing of the upload could be graded "
                                                             "(the reason is above).",
                      "output_format": "md", "visibility": config.get("visibility", {}).get(name, "visible"),
                      "tags": [name]})
    return {"score": 0, "execution_time": round(seconds, 2), "output": f"**Not graded.** {message}",
            "output_format": "md", "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def _uploaded(submission: Path, most=10) -> str:
    """What the student uploaded, as markdown that a file's name cannot break out of."""
    import stat

    from .load import tree
    from .text import code_span

    names = [p.relative_to(submission).as_posix() for p, mode in tree(submission) if not stat.S_ISDIR(mode)]
    shown = ", ".join(code_span(n) for n in names[:most]) + (f" and {len(names) - most} more"
                                                             if len(names) > most else "")
    return shown or "nothing"


def _autograde(source: Path, assignment: str, submission: Path, out: Path) -> subprocess.CompletedProcess:
    """One `autograde` run, in a process of its own (a crash there cannot stop results.json being written)."""
    for part in ("results", "state", "feedback"):
        shutil.rmtree(out / part, ignore_errors=True)
    for name in ("grades.csv", "summary.json"):
        (out / name).unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "autograder.cli", "--assignment", assignment, "--out", str(out), "--jobs", "1",
            "--force", str(submission)]
    print("gradescope: " + " ".join(argv), flush=True)
    result = subprocess.run(argv, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", timeout=float(os.environ.get("KIT_GRADING_TIMEOUT", GRADING_TIMEOUT)))
    print(result.stdout, flush=True)  # the instructor's log (stdout_visibility is hidden from students)
    return result


def _one_result(out: Path):
    """(Gradescope results, check names in order) of the one student in OUT, or None."""
    found = sorted((out / "results").glob("*.json")) if (out / "results").is_dir() else []
    if len(found) != 1:
        return None
    data = json.loads(found[0].read_text())
    try:
        state = json.loads((out / "state" / found[0].name).read_text())
        names = [r["name"] for r in state["results"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    return data, names


def grade_upload(root: Path, config: dict) -> dict:
    """Gradescope's results for ROOT/submission/."""
    from .load import LoadError, pick_file, tree

    started = time.monotonic()
    source, submission = root / "source", root / "submission"
    wanted = f"`{config['notebook']}` or `{config['module']}`"
    if not submission.is_dir() or not any(submission.iterdir()):
        return not_graded(config, f"Nothing was uploaded. Upload your notebook or module ({wanted}).",
                          time.monotonic() - started)
    try:
        pick_file(submission, [config["module"], config["notebook"]])  # reads files, runs nothing
    except LoadError as exc:
        message = str(exc).replace(f"the folder {submission.name} ", "your upload ")
        zipped = " (a zip inside the upload is not unpacked: upload the files themselves)" if any(
            p.suffix.lower() == ".zip" for p, _ in tree(submission)) else ""
        return not_graded(config, f"{message[:1].upper()}{message[1:]}. Uploaded: {_uploaded(submission)}. "
                                  f"Upload your notebook or module ({wanted}){zipped}.", time.monotonic() - started)
    try:
        run = _autograde(source, config["assignment"], submission, source / GRADING)
    except subprocess.TimeoutExpired:
        return not_graded(config, "Grading did not finish in time. Please tell your instructor.",
                          time.monotonic() - started)
    found = _one_result(source / GRADING)
    if found is None:
        print(f"gradescope: autograde ended with status {run.returncode} and no result", flush=True)
        return not_graded(config, "The autograder failed before it could grade your upload (a problem on the "
                                  "grader's side, not necessarily in your work). Please tell your instructor.",
                          time.monotonic() - started)
    data, names = found
    visibility = config.get("visibility", {})
    unknown = "visible" if set(visibility.values()) <= {"visible"} else "hidden"  # a test not matched to a check
    for i, test in enumerate(data.get("tests", [])):
        name = names[i] if len(names) == len(data["tests"]) else (test.get("tags") or [""])[0]
        test["visibility"] = visibility.get(name, unknown)
    data["execution_time"] = round(time.monotonic() - started, 2)
    data["output_format"] = "md"
    return data


def run_autograder(root: Path) -> int:
    """Grade ROOT/submission/ and write ROOT/results/results.json, whatever happens."""
    root = Path(root).absolute()
    results = root / "results" / "results.json"
    started = time.monotonic()
    config = {}
    try:
        config = json.loads((root / "source" / CONFIG).read_text())
        data = grade_upload(root, config)
    except Exception:  # the grader's own failure: the log says what, the student reads a plain message
        traceback.print_exc()
        data = not_graded(config, "The autograder failed while grading your upload (a problem on the grader's "
                                  "side). Please tell your instructor.", time.monotonic() - started)
    _write_json(results, _scrubber(root)(data))
    print(f"gradescope: wrote results.json: score {data['score']:g}", flush=True)
    return 0


def self_test(root: Path) -> int:
    """setup.sh's last step: grade the reference module as a student. It must get full marks; the run also leaves
    the reference's training run cached under source/.grading where the grader may trust the cache."""
    root = Path(root).absolute()
    source = root / "source"
    config = json.loads((source / CONFIG).read_text())
    reference = source / "solutions" / config["assignment"] / config["module"]
    with tempfile.TemporaryDirectory(prefix="gradescope-self-test-") as tmp:
        student = Path(tmp) / "reference"
        student.mkdir()
        shutil.copy(reference, student / config["module"])
        os.chmod(tmp, 0o755)
        run = _autograde(source, config["assignment"], student, source / GRADING)
    found = _one_result(source / GRADING)
    for part in ("results", "state", "feedback"):
        shutil.rmtree(source / GRADING / part, ignore_errors=True)
    total = sum(c[2] for c in config["checks"])
    if found is None:
        print(f"setup.sh: SELF-TEST FAILED: autograde ended with status {run.returncode} and graded nothing")
        return 1
    score = found[0]["score"]
    if score != total:
        failed = [t["name"] for t in found[0]["tests"] if t.get("status") == "failed"]
        print(f"setup.sh: SELF-TEST FAILED: the reference scores {score:g} / {total:g}; failing: {failed}")
        return 1
    print(f"setup.sh: self-test passed: the reference solution scores {score:g} / {total:g}")
    return 0


# ---- the scripts --------------------------------------------------------------------------------------------------

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu, no GPU). Written by
# autograder.gradescope. Environment: AUTOGRADER_ROOT (default /autograder); KIT_SKIP_INSTALL=1 installs nothing
# (the environment already has the kit's requirements: python3 on PATH is used); KIT_SKIP_SELF_TEST=1 skips the
# last step, which grades the reference solution once (full marks expected) and caches its training run.
set -u
AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
export AUTOGRADER_ROOT
SOURCE="$AUTOGRADER_ROOT/source"
VENV="$SOURCE/.venv"
TORCH_PINS="@TORCH_PINS@"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
say() { echo "setup.sh: $*"; }

if [ "${KIT_SKIP_INSTALL:-0}" = "1" ]; then
    say "KIT_SKIP_INSTALL=1: installing nothing"
else
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        export DEBIAN_FRONTEND=noninteractive
        if apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip bubblewrap; then
            say "apt: python3, python3-venv, python3-pip and bubblewrap are installed"
        else
            say "WARNING: apt-get could not install python3/python3-venv/python3-pip/bubblewrap; going on with what is here"
        fi
    else
        say "WARNING: no apt-get here (or not root): python3, python3-venv and bubblewrap are not installed by this script"
    fi
    command -v python3 >/dev/null 2>&1 || { say "ERROR: no python3"; exit 1; }
    say "Python: $(python3 --version 2>&1)"
    # --copies: the venv's python is a file of its own under source/, which bubblewrap can bind into the
    # sandbox; a symlink to /usr/bin/python3 would leave the sandbox without the interpreter it is asked to run.
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv --copies "$VENV" || { say "ERROR: python3 -m venv $VENV failed (python3-venv missing?)"; exit 1; }
    fi
    PIP="$VENV/bin/python -m pip"
    $PIP install --quiet --upgrade pip || say "WARNING: could not upgrade pip; going on"
    TORCH_RANGES="$(grep -E '^(torch|torchvision)[<>=!~ ,0-9.]*$' "$SOURCE/requirements-ranges.txt" | tr '\n' ' ')"
    torch_from=""
    for specs in "$TORCH_PINS" "$TORCH_RANGES"; do
        if $PIP install --quiet $specs --index-url "$CPU_INDEX"; then
            torch_from="the CPU index ($CPU_INDEX): $specs"; break
        fi
        say "WARNING: installing $specs from the CPU index failed; trying the default index"
        if $PIP install --quiet $specs; then
            torch_from="the default index (its build may carry CUDA libraries this machine does not use): $specs"; break
        fi
        say "WARNING: installing $specs from the default index failed"
    done
    [ -n "$torch_from" ] || { say "ERROR: torch could not be installed"; exit 1; }
    say "torch: installed from $torch_from"
    if $PIP install --quiet -r "$SOURCE/requirements.txt"; then
        say "requirements: installed the pinned versions ($SOURCE/requirements.txt)"
    else
        say "WARNING: the pinned requirements could not be installed (another Python version than the one that built the zip?); installing the kit's ranges instead"
        $PIP install --quiet -r "$SOURCE/requirements-ranges.txt" || { say "ERROR: the requirements could not be installed"; exit 1; }
    fi
    say "installed: $($VENV/bin/python -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
fi

if [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; else PY="$(command -v python3)"; fi
command -v bwrap >/dev/null 2>&1 || say "WARNING: bubblewrap (bwrap) is missing: submissions will be graded without its confinement"
if [ "${KIT_SKIP_SELF_TEST:-0}" = "1" ]; then
    say "KIT_SKIP_SELF_TEST=1: the reference is not graded now"
    exit 0
fi
say "self-test: grading the reference solution once (this also caches its training run)"
cd "$SOURCE" && PYTHONPATH="$SOURCE${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m autograder.gradescope --self-test "$AUTOGRADER_ROOT"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this once per submission, as root: it grades $AUTOGRADER_ROOT/submission/ and always leaves
# $AUTOGRADER_ROOT/results/results.json behind. Written by autograder.gradescope.
set -u
AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
export AUTOGRADER_ROOT
SOURCE="$AUTOGRADER_ROOT/source"
RESULTS="$AUTOGRADER_ROOT/results/results.json"
mkdir -p "$AUTOGRADER_ROOT/results"
rm -f "$RESULTS"
if [ -x "$SOURCE/.venv/bin/python" ]; then PY="$SOURCE/.venv/bin/python"; else PY="$(command -v python3 || true)"; fi
# Where bubblewrap cannot confine the child, it still runs under an unprivileged uid: keep from it Gradescope's
# record of earlier submissions (their hidden results) and the checks' visibility.
chmod 600 "$AUTOGRADER_ROOT/submission_metadata.json" "$SOURCE/gradescope.json" 2>/dev/null || true
if [ -n "$PY" ] && cd "$SOURCE"; then
    PYTHONPATH="$SOURCE${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m autograder.gradescope --run-autograder "$AUTOGRADER_ROOT"
fi
if [ ! -s "$RESULTS" ]; then
    echo "run_autograder: the grader wrote no results.json (python missing or broken?); writing a score of 0"
    cat > "$RESULTS" <<'EOF'
{"score": 0, "execution_time": 0, "output": "**Not graded.** The autograder could not start (a problem on the grader's side, not in your work). Please tell your instructor.", "output_format": "md", "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
EOF
fi
exit 0
"""


# ---- command line -------------------------------------------------------------------------------------------------

def _level(text: str):
    check, sep, level = text.partition("=")
    if not sep or not check or level not in LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHECK=LEVEL (or *=LEVEL), LEVEL one of "
                                         f"{', '.join(LEVELS)}")
    return check, level


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope",
                                     description="Write a Gradescope autograder.zip per assignment.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="assignments (default: every one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the zips (default %(default)s)")
    parser.add_argument("--visibility", type=_level, action="append", default=[], metavar="CHECK=LEVEL",
                        help=f"a check's visibility on Gradescope ({', '.join(LEVELS)}); *=LEVEL sets every check; "
                             "default visible, or the checks file's GRADESCOPE_VISIBILITY")
    parser.add_argument("--run-autograder", type=Path, metavar="ROOT",
                        help="inside Gradescope (run_autograder): grade ROOT/submission/, write ROOT/results/")
    parser.add_argument("--self-test", type=Path, metavar="ROOT",
                        help="inside Gradescope (setup.sh): grade the reference once; full marks expected")
    args = parser.parse_args(argv)
    if args.run_autograder:
        return run_autograder(args.run_autograder)
    if args.self_test:
        return self_test(args.self_test)

    from .assignments import ASSIGNMENTS

    unknown = [n for n in args.names if n not in ASSIGNMENTS]
    if unknown:
        parser.error(f"no assignment named {', '.join(unknown)}; there are {', '.join(sorted(ASSIGNMENTS))}")
    try:
        zips = build_some(args.names or sorted(ASSIGNMENTS), args.out, dict(args.visibility))
    except ValueError as exc:
        parser.error(str(exc))
    for path in zips:
        print(f"wrote {path}")
    print("Upload each to its Gradescope programming assignment (Configure Autograder > Zip file upload).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
