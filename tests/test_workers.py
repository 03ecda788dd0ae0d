"""Grading workers: a worker that dies or overruns costs only its student, Ctrl-C leaves no sandbox behind, and no
worker inherits a CUDA context (they are spawned, not forked)."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from autograder import sandbox
from autograder.assignments import ASSIGNMENTS, ROOT
from autograder.grade import prepare
from autograder.workers import grade_all
from tests.test_sandbox import running

SAMPLES = ROOT / "solutions" / "resnet50_cifar10" / "samples"


def lingering(seconds):
    """A submission that starts `sleep SECONDS` and then never finishes defining itself."""
    return (SAMPLES / "reference.py").read_text() + (
        f"\n\nclass Linger:\n    import subprocess\n    subprocess.Popen(['sleep', '{seconds}'])\n"
        "    while True:\n        pass\n")


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    scratch = sandbox.scratch_dir()
    out = tmp_path_factory.mktemp("out")
    return prepare(ASSIGNMENTS["resnet50_cifar10"], None, "cpu", out / ".cache", scratch,
                   sandbox.Limits(timeout_s=60)), scratch


def test_a_student_past_the_grading_deadline_costs_only_that_student(context, tmp_path):
    ctx, scratch = context
    (tmp_path / "slow.py").write_text(lingering(317))
    # the next student must finish well inside the deadline on a slow machine: the unfilled release fails every
    # check without a training run, in a few seconds
    tasks = [("slow", str(tmp_path / "slow.py"), str(scratch), None),
             ("next", str(SAMPLES / "release.py"), str(scratch), None)]
    hellos = []
    results = {r.student: r for r in grade_all(tasks, ctx, 1, deadline_s=30, hellos=hellos)}
    assert results["slow"].cause == "timeout: grading your submission (its checks and training run) took longer than 30 s"
    assert results["slow"].score == 0 and all(not r.passed for r in results["slow"].results)
    nxt = results["next"]  # graded in full by a fresh worker: its own failures, not the overrun's
    assert nxt.cause is None and len(nxt.results) == len(results["slow"].results) > 10
    assert all("took longer" not in r.message for r in nxt.results)
    assert len(hellos) == 2
    assert all(h["start_method"] == "spawn" and not h["cuda_initialized"] for h in hellos)
    time.sleep(1)
    assert not running(["sleep", "317"])  # the overrunning worker's sandbox went with it


def test_a_worker_killed_from_outside_costs_only_its_student(context, tmp_path):
    ctx, scratch = context
    (tmp_path / "victim.py").write_text(lingering(318))
    tasks = [("victim", str(tmp_path / "victim.py"), str(scratch), None),
             ("ok", str(SAMPLES / "reference.py"), str(scratch), None)]
    hellos = []

    def oom_killer():  # what the kernel does to a worker that takes too much memory
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not running(["sleep", "318"]):
            time.sleep(0.2)
        os.kill(hellos[0]["pid"], signal.SIGKILL)

    killer = threading.Thread(target=oom_killer)
    killer.start()
    results = {r.student: r for r in grade_all(tasks, ctx, 1, deadline_s=300, hellos=hellos)}
    killer.join()
    assert results["victim"].cause.startswith("memory: grading your submission needed more memory")
    assert results["ok"].score == 120
    time.sleep(1)
    assert not running(["sleep", "318"])  # its sandbox died with it


def test_ctrl_c_with_several_jobs_leaves_no_sandbox_running(tmp_path):
    for name in ("ann", "ben"):
        (tmp_path / f"{name}.py").write_text(lingering(319))
    args = [sys.executable, "-m", "autograder.cli", "--assignment", "resnet50_cifar10", "--out", str(tmp_path / "out"),
            "--jobs", "2", "--timeout", "120", str(tmp_path / "ann.py"), str(tmp_path / "ben.py")]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and count(["sleep", "319"]) < 2:
            time.sleep(0.5)
        assert count(["sleep", "319"]) == 2, "both sandboxes should be running"
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 130
    finally:
        child.kill()
    time.sleep(1)
    assert count(["sleep", "319"]) == 0


def count(argv):
    wanted = "\0".join(argv).encode() + b"\0"
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    n += f.read() == wanted
            except OSError:
                pass
    return n
