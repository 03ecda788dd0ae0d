"""Gradescope's autograder.zip, end to end: built by autograder.gradescope, unpacked into a temporary root as
Gradescope unpacks it (ROOT/source/), set up with the installs skipped (this environment has them), then each kind
of upload placed under ROOT/submission/ and graded by run_autograder, its results.json validated against a JSON
schema of Gradescope's format (../shared/spec/facts.md, Formats) written here.

The cheapest assignment to grade is used: resnet_paper_cifar10 (14 s a submission where resnet50_cifar10 takes
25 s, README's cost table)."""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import gradescope
from autograder.assignments import ASSIGNMENTS, ROOT
from tests.test_paper_resnets import EXPECTED

jsonschema = pytest.importorskip("jsonschema")  # installed with nbformat, which needs it

ASSIGNMENT = ASSIGNMENTS["resnet_paper_cifar10"]
TOTAL = 100
BUG = "stride_on_second_conv"  # a bare .py, graded inside a student folder with junk beside it
VISIBILITY = {"block_stride": "hidden", "training_keeps_up": "after_published"}

# Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/, as facts.md says)
LEVEL = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
TEST = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "number", "score", "max_score", "status", "output", "visibility"],
    "properties": {
        "name": {"type": "string", "minLength": 1}, "name_format": FORMAT, "number": {"type": "string"},
        "score": {"type": "number", "minimum": 0}, "max_score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed"]}, "output": {"type": "string"}, "output_format": FORMAT,
        "tags": {"type": "array", "items": {"type": "string"}}, "visibility": LEVEL, "extra_data": {"type": "object"},
    },
}
RESULTS = {
    "type": "object", "additionalProperties": False,
    "required": ["score", "execution_time", "output", "output_format", "visibility", "stdout_visibility", "tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0}, "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string", "minLength": 1}, "output_format": FORMAT, "test_output_format": FORMAT,
        "test_name_format": FORMAT, "visibility": LEVEL, "stdout_visibility": LEVEL,
        "extra_data": {"type": "object"}, "tests": {"type": "array", "items": TEST},
        "leaderboard": {"type": "array", "items": {"type": "object", "required": ["name", "value"]}},
    },
}


def unpack(archive: Path, into: Path):
    """Unpack as `unzip` does, modes included (zipfile's extractall drops them)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            target = into / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
            os.chmod(target, (info.external_attr >> 16) & 0o777)


def environment(root: Path) -> dict:
    """This venv's python3 first on PATH (the installs are skipped), AUTOGRADER_ROOT at the temporary root."""
    return {**os.environ, "AUTOGRADER_ROOT": str(root), "KIT_SKIP_INSTALL": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def machine_paths(root: Path) -> list:
    return [str(ROOT), str(root), str(root.resolve()), sys.prefix, "/tmp/", "pytest-of", "/root"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return gradescope.build(ASSIGNMENT.name, tmp_path_factory.mktemp("zips"), VISIBILITY)


@pytest.fixture(scope="module")
def root(archive, tmp_path_factory):
    """Gradescope's layout: the zip unpacked into ROOT/source/, run_autograder copied to ROOT/, setup.sh run once
    (installs skipped; its self-test grades the reference and caches the reference's training run)."""
    root = tmp_path_factory.mktemp("gradescope") / "autograder"
    unpack(archive, root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root, env=environment(root),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "KIT_SKIP_INSTALL=1: installing nothing" in done.stdout
    assert f"self-test passed: the reference solution scores {TOTAL} / {TOTAL}" in done.stdout, done.stdout[-3000:]
    return root


def grade(root: Path, files: dict) -> dict:
    """Place `files` ({relative path: bytes}) under ROOT/submission/ as Gradescope does, run run_autograder, and
    return results.json, checked against the schema and for the grading machine's paths."""
    shutil.rmtree(root / "submission", ignore_errors=True)
    (root / "submission").mkdir()
    for name, data in files.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_bytes(data)
    (root / "results").mkdir(exist_ok=True)
    (root / "results" / "results.json").write_text("stale")
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=environment(root), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (root / "results" / "results.json").read_text()
    results = json.loads(text)
    jsonschema.validate(results, RESULTS)
    assert not [p for p in machine_paths(root) if p in text], text
    assert "Traceback" not in text
    assert results["output_format"] == "md"
    return results


def by_check(results: dict) -> dict:
    return {t["tags"][0]: t for t in results["tests"]}


def test_zip_layout(archive):
    with zipfile.ZipFile(archive) as z:
        infos = {i.filename: i for i in z.infolist()}
        names = sorted(infos)
        assert names == [i.filename for i in z.infolist()]  # sorted entries
        assert {"setup.sh", "run_autograder", "requirements.txt", "pyproject.toml", gradescope.CONFIG} <= set(names)
        for script in ("setup.sh", "run_autograder"):
            mode = infos[script].external_attr >> 16
            assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, script
            assert z.read(script).startswith(b"#!/usr/bin/env bash\n")
        assert "autograder/cli.py" in names and "autograder/gradescope.py" in names
        solutions = {n for n in names if n.startswith("solutions/")}
        folder = f"solutions/{ASSIGNMENT.name}/"
        assert solutions and all(n.startswith(folder) for n in solutions)  # nothing of another assignment
        assert {folder + f for f in ("assignment.py", "checks.py", ASSIGNMENT.module, ASSIGNMENT.notebook)} <= solutions
        assert not [n for n in names if "/samples/" in n or "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if n.startswith(("tests/", "assignments/", "out/", "data/", ".venv/"))]
        assert {i.date_time for i in infos.values()} == {gradescope.ZIP_TIME}

        pinned = [line for line in z.read("requirements.txt").decode().splitlines() if not line.startswith("#")]
        ranges = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
        wanted = [re.match(r"[A-Za-z0-9._-]+", line).group(0) for line in ranges if line]
        assert [line.split("==")[0] for line in pinned] == wanted
        assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.]*", line) for line in pinned), pinned
        import torch
        assert f"torch=={torch.__version__.split('+')[0]}" in pinned
        setup = z.read("setup.sh").decode()
        assert f'TORCH_PINS="torch=={torch.__version__.split("+")[0]} torchvision==' in setup
        assert "--index-url https://download.pytorch.org/whl/cpu" in setup.replace('"$CPU_INDEX"', gradescope.CPU_INDEX)

        config = json.loads(z.read(gradescope.CONFIG))
        assert config["assignment"] == ASSIGNMENT.name and sum(c[2] for c in config["checks"]) == TOTAL
        assert config["visibility"] == {c[0]: VISIBILITY.get(c[0], "visible") for c in config["checks"]}


def test_zip_is_deterministic(archive, tmp_path):
    assert gradescope.build(ASSIGNMENT.name, tmp_path, VISIBILITY).read_bytes() == archive.read_bytes()


def test_visibility_is_validated():
    checks = [["a", "A", 5], ["b", "B", 5]]
    assert gradescope.resolve_visibility(checks, {}, None) == {"a": "visible", "b": "visible"}
    assert gradescope.resolve_visibility(checks, {"a": "hidden"}, {"*": "after_due_date", "b": "visible"}) == \
        {"a": "after_due_date", "b": "visible"}
    with pytest.raises(ValueError, match="no check named 'c'"):
        gradescope.resolve_visibility(checks, {}, {"c": "hidden"})
    with pytest.raises(ValueError, match="must be one of"):
        gradescope.resolve_visibility(checks, {}, {"a": "secret"})
    with pytest.raises(SystemExit):
        gradescope.main(["--visibility", "a=secret", ASSIGNMENT.name])


def test_the_kit_runs_from_the_zip(root):
    """run_autograder's python imports the zip's copy of the kit, which knows this assignment only."""
    code = "import autograder.assignments as a; print(a.ROOT, sorted(a.ASSIGNMENTS))"
    done = subprocess.run([sys.executable, "-c", code], cwd=root / "source", capture_output=True, text=True,
                          env={**environment(root), "PYTHONPATH": str(root / "source")}, check=True)
    assert done.stdout.split() == [str(root / "source"), f"['{ASSIGNMENT.name}']"]


def test_reference_notebook_full_marks(root):
    results = grade(root, {"reference_notebook.ipynb": (ASSIGNMENT.samples_dir / "reference_notebook.ipynb")
                           .read_bytes()})
    assert results["score"] == TOTAL and sum(t["max_score"] for t in results["tests"]) == TOTAL
    assert all(t["status"] == "passed" for t in results["tests"])
    assert "reference_notebook.ipynb" in results["output"]
    assert {name: t["visibility"] for name, t in by_check(results).items()} == \
        {name: VISIBILITY.get(name, "visible") for name in by_check(results)}


def test_bug_in_a_student_folder_with_junk(root):
    """A .py with a known bug, in a folder as a student's zip unpacks, beside files that are not code."""
    score, failing = EXPECTED[BUG]
    results = grade(root, {f"hw3/{BUG}.py": (ASSIGNMENT.samples_dir / f"{BUG}.py").read_bytes(),
                           "hw3/notes.txt": b"my notes\n", "hw3/loss.png": b"\x89PNG\r\n\x1a\n",
                           "hw3/.ipynb_checkpoints/old-checkpoint.py": b"x = (\n",
                           "__MACOSX/hw3/._notes.txt": b"\0\0"})
    assert results["score"] == score == TOTAL - 5
    failed = {name: t for name, t in by_check(results).items() if t["status"] == "failed"}
    assert set(failed) == failing == {"block_stride"}
    assert failed["block_stride"]["score"] == 0 and failed["block_stride"]["max_score"] == 5
    assert failed["block_stride"]["name"].startswith("BasicBlock: the stride")
    assert failed["block_stride"]["visibility"] == "hidden"  # set when the zip was built
    assert f"{BUG}.py" in results["output"]


@pytest.mark.parametrize("files, message", [
    ({"notes.txt": b"I could not finish\n"}, "no .ipynb or .py file"),  # nothing gradable: told without grading
    ({"resnet_paper_cifar10.ipynb": b'{"cells": [\n'}, "is not a valid notebook"),  # through autograde
], ids=["text-only", "broken-notebook"])
def test_broken_upload_scores_zero_with_its_message(root, files, message):
    results = grade(root, files)
    assert results["score"] == 0 and all(t["score"] == 0 for t in results["tests"])
    assert sum(t["max_score"] for t in results["tests"]) == TOTAL
    assert message in results["output"]
    assert results["tests"] and message in results["tests"][0]["output"]
    assert by_check(results)["training_keeps_up"]["visibility"] == "after_published"


def test_empty_upload(root):
    results = grade(root, {})
    assert results["score"] == 0 and "Nothing was uploaded" in results["output"]


def test_grader_failure_still_writes_results(tmp_path):
    """No config (the zip's files damaged): the Python side writes 0 with a plain message; no Python that can run
    at all: run_autograder's own fallback does."""
    assert gradescope.run_autograder(tmp_path) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(results, RESULTS)
    assert results["score"] == 0 and "tell your instructor" in results["output"]

    root = tmp_path / "broken"
    python = root / "source" / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    script = root / "run_autograder"
    script.write_text(gradescope.RUN_AUTOGRADER)
    script.chmod(0o755)
    subprocess.run([str(script)], env=environment(root), check=True, capture_output=True)
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, RESULTS)
    assert results["score"] == 0 and "could not start" in results["output"]


def test_the_upload_listing_is_bounded_and_names_stay_text(tmp_path):
    """What a 'nothing to grade' message lists of the upload: file names as code spans that a name cannot leave,
    and no walk down 1,200 nested folders."""
    from autograder.gradescope import _uploaded
    from tests.helpers import nested, remove_nested

    (tmp_path / "x`\n# Score 100.txt").write_text("")
    folders = nested(tmp_path)
    try:
        listed = _uploaded(tmp_path)
    finally:
        remove_nested(folders)
    assert listed == "``x`?# Score 100.txt``"
