"""autograde --ray: the samples graded on a Ray cluster get the grades.csv of a local run; a dying worker is retried
once, then costs only its student with a clear cause; a task past its deadline is cancelled.

The cluster is a Ray head of this test's own (`ray start --head --block`, 2 CPUs, loopback port, a temp dir of
its own). It is stopped by ending that process (SIGTERM: it ends the processes it started, and only those; then
SIGKILL to its process group), never with `ray stop`, which would end every Ray process on the machine, a
cluster the user runs included.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.assignments import ASSIGNMENTS, ROOT
from autograder.check import Result
from autograder.grade import Checklist, Context

ray = pytest.importorskip("ray")
from autograder import cluster  # noqa: E402 - needs ray

NAME = "resnet_paper_cifar10"  # the cheapest assignment to grade
SAMPLES = ROOT / "solutions" / NAME / "samples"
EXPECTED = {"reference": 100, "num_classes_ignored": 95, "release": 0}  # README's table of the samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head():
    """The address of a one-node Ray cluster with 2 CPUs, ended at the end of the module."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    log = open(temp / "head.log", "wb")
    env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # nothing to drain: end at once
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus", "2",
         "--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--port", str(port), "--disable-usage-stats",
         "--include-dashboard=false", "--temp-dir", str(temp)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while b"Ray runtime started" not in (temp / "head.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(temp / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
        except ProcessLookupError:
            pass
        process.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def autograde(out, *args):
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "autograder.cli", "--assignment", NAME, "--out", str(out),
                          "--jobs", "2", *args, *[str(SAMPLES / f"{s}.py") for s in EXPECTED]],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    return time.monotonic() - started


def test_the_samples_graded_on_ray_get_the_grades_of_a_local_run(head, tmp_path):
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    ray_s = autograde(ray_out, "--ray", head)
    (local_out / ".cache").mkdir(parents=True)  # the same reference training result: only the grading differs
    shutil.copy(ray_out / ".cache" / "reference-training.json", local_out / ".cache")
    local_s = autograde(local_out)
    print(f"\n3 samples: {ray_s:.0f} s on the local Ray cluster, {local_s:.0f} s locally (reference training cached)")

    on_ray, local = (list(csv.reader((out / "grades.csv").open())) for out in (ray_out, local_out))
    assert on_ray == local
    assert {row[0]: float(row[-3]) for row in on_ray[1:]} == EXPECTED
    summary = json.loads((ray_out / "summary.json").read_text())
    assert summary["ray"]["address"] == head
    assert (summary["ray"]["nodes"], summary["ray"]["cpus"], summary["ray"]["task"]) == (1, 2, {"num_cpus": 1})
    assert summary["start_method"] == "ray" and summary["workers"]
    assert all(w["start_method"] == "ray" and not w["cuda_initialized"] for w in summary["workers"])
    for student in EXPECTED:  # each student's files, with the driver's path and the local run's key (resume)
        a, b = (json.loads((out / "state" / f"{student}.json").read_text()) for out in (ray_out, local_out))
        assert a["source"] == b["source"] == str(SAMPLES / f"{student}.py")
        assert a["key"] == b["key"]
        assert (ray_out / "feedback" / f"{student}.md").is_file()
        assert (ray_out / "results" / f"{student}.json").is_file()


# ---- a worker that dies, a task past its deadline: a task function that does what is asked of it ---------------

def misbehaving(task, context, files, starts=None, token=None, attempt=1):
    """Stands in for cluster.grade_task: records the attempt, then dies, hangs or grades as the student's name
    says."""
    student, _, attempts, _ = task
    starts.mark.remote(token)
    (Path(attempts) / f"{student}.{attempt}").write_text(str(os.getpid()))
    if student == "dies_always" or (student == "dies_once" and attempt == 1):
        os._exit(1)
    if student == "hangs":
        time.sleep(600)
    graded = Result("graded", "graded", 1, 1, True, f"graded on attempt {attempt}")
    return {"pid": os.getpid(), "node": "", "start_method": "ray", "cuda_initialized": False}, {
        "student": student, "source": task[1], "results": [vars(graded)]}


def test_a_dying_worker_is_retried_once_then_its_student_gets_a_clear_cause(head, tmp_path):
    checklist = Checklist.of(ASSIGNMENTS[NAME])
    context = Context(checklist, None, None, "", "cpu", sandbox.Limits(threads=1), {"checks": "unused"})
    tasks = [(s, f"/nowhere/{s}.py", str(tmp_path), None) for s in ("dies_always", "dies_once", "hangs")]
    results = {r.student: r for r in cluster.grade_on_ray(tasks, context, head, deadline_s=5,
                                                          task_fn=misbehaving)}
    assert not ray.is_initialized()  # it joined the cluster, so it left it

    attempts = sorted(p.name for p in tmp_path.iterdir())
    assert attempts == ["dies_always.1", "dies_always.2", "dies_once.1", "dies_once.2", "hangs.1"]
    died = results["dies_always"]  # twice: every check 0, and the cause says what happened
    assert died.cause == ("internal: the grading worker died twice while grading your submission; your instructor "
                          "has the details")
    assert died.score == 0 and len(died.results) == len(checklist.columns()) > 10
    assert all(not r.passed and r.message.startswith("not graded: the grading worker died twice")
               for r in died.results)
    assert (results["dies_once"].cause, results["dies_once"].score) == (None, 1)  # the second attempt's grade
    assert results["dies_once"].results[0].message == "graded on attempt 2"

    hung = results["hangs"]  # cancelled at its deadline, as a local worker would be
    assert hung.cause == "timeout: grading your submission (its checks and training run) took longer than 5 s"
    assert hung.score == 0
    pid = int((tmp_path / "hangs.1").read_text())
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists(), "the cancelled task's worker is still running"


def test_a_worker_killed_for_memory_twice_is_a_memory_cause():
    cause = cluster.died_cause(("WorkerCrashedError: ...", "OutOfMemoryError: Task was killed due to the node "
                                                          "running low on memory"))
    assert cause.startswith("memory: grading your submission needed more memory than the machine could give")


def test_a_cluster_that_cannot_run_a_task_is_refused_before_grading(head):
    with pytest.raises(cluster.ClusterError, match=r"no node of the Ray cluster .* can run one student's task"):
        cluster.connect(head, "cuda", 1, 1)  # no GPU on it
    with pytest.raises(cluster.ClusterError, match="can run one student's task"):
        cluster.connect(head, "cpu", 1, 3)  # 3 CPUs a task, 2 on the node
    assert not ray.is_initialized()


def test_a_folder_travels_whole_with_its_links_kept_as_links(tmp_path):
    from autograder.grade import submission_hash

    ann = tmp_path / "here" / "ann"
    (ann / "sub").mkdir(parents=True)
    (ann / "resnet_cifar.py").write_text("x = 1\n")
    (ann / "sub" / "notes.ipynb").write_bytes(b"{}")
    (ann / "secret").symlink_to("/etc/passwd")
    node = tmp_path / "node"
    node.mkdir()
    there = cluster.unpack(cluster.pack(ann), node)
    assert there == node / "ann" and submission_hash(there) == submission_hash(ann)
    assert (there / "secret").is_symlink() and os.readlink(there / "secret") == "/etc/passwd"
    assert cluster.pack(tmp_path / "nobody") is None
    with pytest.raises(ValueError, match="escapes"):
        cluster.unpack([("../x", "file", b"")], node)
