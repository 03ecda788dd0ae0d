"""Grading on a Ray cluster (`autograde --ray ADDRESS`): one Ray task per student, results yielded as they finish.

`grade_on_ray` is a drop-in for `workers.grade_all`: the CLI writes each student's files as results come back, so
resume and Ctrl-C keep their promises. Each task runs the grading function a local worker runs (`grade.grade`),
and the sandbox runs inside the Ray worker as it does locally (bubblewrap where the node has it; `hellos` says per
node). What travels:

- the run's `Context` (checklist, the reference's rebuilt models and training result, the training data's
  tensors, limits) once, with `ray.put`: it pickles, as the local spawned workers already need. A node reads the
  checks from the driver's path when it sees the same files (a shared file system), else from its own installed
  kit; either way it refuses to grade unless its checks' fingerprint is the driver's (the run's key).
- each student's submission as bytes (the file, or the folder's files and links), rebuilt under the node's own
  scratch dir with the same name, so the submission hash and the result's key are the driver's.

Resources per task: `num_cpus` = the threads a local job would use (`Limits.threads`: the driver's cores divided by
`--jobs`), and with `--device cuda` `num_gpus` = 1 / `--jobs` (a fraction: that many students share a GPU, as
`--jobs` workers share it locally). Every node needs the same kit and Python environment (`pip install` of this
repository, same versions) and the task's resources on one node; `connect` checks the latter before grading.

Failures cost only the student in hand:
- a worker that dies (WorkerCrashedError, the node lost, Ray's OOM killer) is retried once by this driver
  (Ray's own `max_retries` is 0, so an attempt and its deadline are ours to count); a second death gives every
  check 0 and a cause: "memory: ..." when Ray's memory monitor killed it, else "internal: ..." (so a resumed run
  grades the student again, as it does after a local worker's unexplained death).
- the per-student deadline (`--grading-timeout`) counts from when the task starts running on a worker (each task
  reports its start to a small actor), not from when it was queued; past it the task is cancelled with
  `ray.cancel(force=True)` (the worker process exits; its sandboxed child dies with it: PR_SET_PDEATHSIG) and the
  student gets "timeout", as locally.
- Ctrl-C (or the CLI closing this generator) cancels every task still queued or running.
"""
import contextlib
import logging
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from . import sandbox
from .workers import TIMEOUT_CAUSE, failed

RETRIES = 1  # a worker's death is retried this many times
POLL_S = 1.0


class ClusterError(Exception):
    """The cluster cannot be reached, or cannot run one task of this shape."""


def resources(device: str, jobs: int, threads: int) -> dict:
    """What one student's task asks of Ray."""
    shape = {"num_cpus": max(1, threads)}
    if device == "cuda":
        shape["num_gpus"] = (10_000 // max(1, jobs)) / 10_000  # Ray counts GPUs in 1e-4: N shares fit in one
    return shape


def _reachable(address: str, timeout_s=10.0):
    """Raise ConnectionError unless host:port (or ray://host:port) answers: ray.init would retry for minutes."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError("expected auto, HOST:PORT or ray://HOST:PORT")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
        pass


def _init(address: str):
    import ray

    if ray.is_initialized():
        return False
    _reachable(address)
    handler = signal.getsignal(signal.SIGINT)
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=True)
    finally:
        signal.signal(signal.SIGINT, handler)  # Ctrl-C stays the CLI's
    return True


def connect(address: str, device: str, jobs: int, threads: int) -> dict:
    """Join the cluster at `address` ("auto", "host:port", "ray://host:10001") and check that one of its live
    nodes can run a task of this shape. Returns what the summary records; raises ClusterError."""
    import ray

    shape = resources(device, jobs, threads)
    try:
        _init(address)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # ConnectionError, a version mismatch, a timeout: said plainly, once
        raise ClusterError(f"cannot join the Ray cluster at {address}: {type(exc).__name__}: {exc}") from None
    want = {"CPU": shape["num_cpus"], "GPU": shape.get("num_gpus", 0)}

    def slots(node):
        have = node.get("Resources", {})
        return min(int(have.get(k, 0) // v) for k, v in want.items() if v) if all(
            have.get(k, 0) >= v for k, v in want.items()) else 0

    total = sum(slots(n) for n in nodes)
    info = {"address": address, "nodes": len(nodes),
            "cpus": sum(n.get("Resources", {}).get("CPU", 0) for n in nodes),
            "gpus": sum(n.get("Resources", {}).get("GPU", 0) for n in nodes),
            "task": shape, "slots": total, "ray": ray.__version__}
    if not total:
        ray.shutdown()
        raise ClusterError(f"no node of the Ray cluster at {address} can run one student's task ({shape}): its "
                           f"{len(nodes)} node(s) hold {info['cpus']:g} CPUs and {info['gpus']:g} GPUs in all. A task "
                           "asks the CPUs a local job would use (this machine's cores / --jobs: raise --jobs for "
                           "fewer) and, with --device cuda, 1 / --jobs of a GPU")
    return info


# ---- a submission travels as data ---------------------------------------------------------------------------------

def pack(path: Path):
    """A submission as data: [(relative path, "file" | "link" | "dir", bytes)], the top entry named as `path`;
    None when nothing is there (a corrupt zip's student, say). Links are kept as links, never followed: the grader
    refuses them on the node as it does here."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    entries = []
    tops = [path] if not path.is_dir() or path.is_symlink() else [path, *sorted(path.rglob("*"))]
    for p in tops:
        rel = p.relative_to(path.parent).as_posix()
        info = os.lstat(p)
        if stat.S_ISLNK(info.st_mode):
            entries.append((rel, "link", os.readlink(p).encode()))
        elif stat.S_ISDIR(info.st_mode):
            entries.append((rel, "dir", b""))
        elif stat.S_ISREG(info.st_mode):
            entries.append((rel, "file", p.read_bytes()))
    return entries


def unpack(entries, into: Path) -> Path:
    """The submission rebuilt under `into` (made fresh, private); returns its top path."""
    for rel, kind, data in entries:
        target = into / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"a submission entry escapes its folder: {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.realpath(target.parent).startswith(os.path.realpath(into)):  # never through a link
            raise ValueError(f"a submission entry lies behind a link: {rel!r}")
        if kind == "dir":
            target.mkdir(exist_ok=True)
        elif kind == "link":
            os.symlink(data.decode(), target)
        else:
            target.write_bytes(data)
    return into / entries[0][0]


# ---- on the worker -------------------------------------------------------------------------------------------------

def _node_context(context, scratch: Path):
    """The driver's context, with the checks this node reads and its own paths hidden from students."""
    from .assignments import ASSIGNMENTS, ROOT

    checklist = context.checklist
    if not Path(checklist.file).is_file():
        checklist = replace(checklist, file=ASSIGNMENTS[checklist.name].checks)
    if checklist.fingerprint() != context.key.get("checks"):
        raise RuntimeError(f"this node's checks ({checklist.file}) differ from the driver's: install the same kit "
                           "on every node")
    # each task has a scratch dir of its own, so a warm sandbox would serve one child: it starts cold
    return replace(context, checklist=checklist, limits=replace(context.limits, warm=False),
                   hide=(*context.hide, scratch, ROOT, Path(sys.prefix), Path.home()))


def grade_task(task, context, files, starts=None, token=None, attempt=1):
    """One student, on a Ray worker: (hello, StudentResult as JSON, or {"failure": cause}). Never raises for what
    the submission does; a grader bug costs this student only, as in a local worker."""
    import torch

    from .grade import grade

    if starts is not None:
        starts.mark.remote(token)  # the deadline starts now
    hello = {"pid": os.getpid(), "node": _node_address(), "start_method": "ray",
             "cuda_initialized": torch.cuda.is_initialized(), "confined": bool(sandbox.jail().bwrap)}
    student, path, _, error = task
    scratch = sandbox.scratch_dir()  # this node's
    try:
        context = _node_context(context, scratch)
        torch.set_num_threads(context.limits.threads)
        # 0700 under the scratch dir: no sandboxed child can read it
        here = unpack(files, Path(tempfile.mkdtemp(prefix="submission-", dir=scratch))) if files else Path(path)
        result = grade(student, here, context, scratch, 1, error).to_json()
        if result["source"].startswith(str(here)):  # the driver's path, as a local run says it
            result["source"] = path + result["source"][len(str(here)):]
    except MemoryError:
        result = {"failure": "memory: grading your submission needed more memory than the grader allows"}
    except Exception as exc:  # noqa: BLE001 - a grader bug costs this student, never the batch
        print(f"\ninternal error grading {student} on {hello['node']}:\n{traceback.format_exc()}", file=sys.stderr,
              flush=True)
        result = {"failure": f"internal: the grader failed on this submission ({type(exc).__name__}); your "
                             "instructor has the details"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return hello, result


def _node_address() -> str:
    import ray

    with contextlib.suppress(Exception):
        return ray.util.get_node_ip_address()
    return ""


class _Starts:
    """Where tasks say they started running (a Ray actor holding no CPU)."""

    def __init__(self):
        self.seen = []

    def mark(self, token):
        self.seen.append(token)

    def take(self):
        seen, self.seen = self.seen, []
        return seen


# ---- on the driver -------------------------------------------------------------------------------------------------

@dataclass
class _Attempt:
    task: tuple
    number: int
    token: str
    started: float = None  # driver's monotonic clock when the worker said it started
    deaths: tuple = ()


def _death(exc) -> str:
    """What killed an attempt, for the instructor (stderr) and the kind of cause."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def died_cause(deaths) -> str:
    """The cause of a student whose every attempt's worker died: memory when Ray's OOM killer ended the last."""
    if deaths[-1].startswith("OutOfMemoryError"):
        return ("memory: grading your submission needed more memory than the machine could give (the grading "
                f"worker was killed {len(deaths)} times)")
    return (f"internal: the grading worker died {'twice' if len(deaths) == 2 else f'{len(deaths)} times'} while "
            "grading your submission; your instructor has the details")


def grade_on_ray(tasks, context, address, jobs=1, deadline_s=600.0, hellos=None, info=None, task_fn=None):
    """Yield each task's StudentResult as it finishes on the cluster at `address`. `tasks`: (student, path,
    scratch, error), as for `workers.grade_all`; `info`: what `connect` returned (it connects when None);
    `task_fn`: the function each task runs (`grade_task`; tests inject a dying one)."""
    import ray
    from ray import exceptions as rex

    from .grade import StudentResult

    joined = _init(address)
    info = info or connect(address, context.device, jobs, context.limits.threads)
    columns = context.checklist.columns()
    remote = ray.remote(task_fn or grade_task).options(name="autograde", max_retries=0, **info["task"])
    starts = ray.remote(_Starts).options(num_cpus=0).remote()
    shipped = ray.put(context)
    dies = tuple(getattr(rex, name) for name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                                                 "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError")
                 if hasattr(rex, name))  # the worker, its node or its result gone: worth one more try
    pending, running, seen_workers, serial = deque(tasks), {}, set(), 0
    asked = [starts.take.remote()]  # the start marks asked for, answered between polls (never waited on)

    def submit(task, number=1, deaths=()):
        nonlocal serial
        serial += 1
        token = f"{serial}"
        ref = remote.remote(task, shipped, pack(task[1]), starts, token, number)
        running[ref] = _Attempt(task, number, token, deaths=deaths)

    def note_starts():
        if not ray.wait(asked, timeout=0)[0]:
            return
        try:
            tokens = set(ray.get(asked[0]))
            asked[0] = starts.take.remote()
        except Exception:  # noqa: BLE001 - the actor is gone: count every attempt from now on (lenient)
            tokens = {a.token for a in running.values()}
            asked[0] = ray.put([])
        now = time.monotonic()
        for attempt in running.values():
            if attempt.started is None and attempt.token in tokens:
                attempt.started = now

    try:
        while pending:  # everything queued at once: Ray schedules (and an autoscaler sees the demand)
            submit(pending.popleft())
        while running:
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=POLL_S)
            note_starts()
            for ref in ready:
                attempt = running.pop(ref)
                student, path = attempt.task[0], attempt.task[1]
                try:
                    hello, data = ray.get(ref)
                except dies as exc:
                    deaths = (*attempt.deaths, _death(exc))
                    print(f"\nautograde: {student}: the grading worker died ({deaths[-1]})"
                          + ("; trying again" if attempt.number <= RETRIES else "; giving up"), file=sys.stderr)
                    if attempt.number <= RETRIES:
                        submit(attempt.task, attempt.number + 1, deaths)
                        continue
                    data = {"failure": died_cause(deaths)}
                except Exception as exc:  # noqa: BLE001 - the task could not run at all (RayTaskError, ...)
                    print(f"\nautograde: {student}: the Ray task failed ({_death(exc)})", file=sys.stderr)
                    data = {"failure": "internal: the grader could not run on this submission's node; your "
                                       "instructor has the details"}
                else:
                    key = (hello.get("node"), hello.get("pid"))
                    if hellos is not None and key not in seen_workers:
                        seen_workers.add(key)
                        hellos.append(hello)
                if "failure" in data:
                    data = failed(student, path, columns, data["failure"])
                yield StudentResult.from_json(data)
            now = time.monotonic()
            for ref, attempt in list(running.items()):
                if attempt.started is not None and now - attempt.started > deadline_s:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                    del running[ref]
                    yield StudentResult.from_json(failed(attempt.task[0], attempt.task[1], columns,
                                                         TIMEOUT_CAUSE.format(deadline_s)))
    finally:
        for ref in running:  # Ctrl-C, or the caller stopped early: nothing keeps grading for nobody
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            ray.kill(starts)
        if joined:
            with contextlib.suppress(Exception):
                ray.shutdown()
