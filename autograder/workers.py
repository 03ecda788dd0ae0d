"""Grading workers: every student is graded in a worker process, never in the process that runs the batch.

Workers are started with "spawn", not fork: the batch process may hold a CUDA context (the reference trained on
the GPU), which a forked child cannot use ("Cannot re-initialize CUDA in forked subprocess"). A worker that dies
(the kernel's OOM killer, a crash) or overruns its time costs only the student in hand, who gets a clear cause;
the worker is replaced and the batch goes on. On Ctrl-C the workers are ended with SIGTERM, so each kills its
sandboxed child on the way out (the child also dies with its parent whatever happens: PR_SET_PDEATHSIG).
"""
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path

from . import sandbox
from .check import Result

START_METHOD = "spawn"
TIMEOUT_CAUSE = "timeout: grading your submission (its checks and training run) took longer than {:g} s"


def _exit(signum, frame):
    raise SystemExit(128 + signum)


def _worker_main(conn, context, slot, memory_bytes):
    """A worker's life: say hello, then grade each task received until told to stop."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    signal.signal(signal.SIGTERM, _exit)  # so finally-blocks run: the sandbox's kills its child
    hello = {"pid": os.getpid(), "start_method": multiprocessing.get_start_method(),
             "cuda_initialized": torch.cuda.is_initialized()}
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    torch.set_num_threads(context.limits.threads)
    conn.send_bytes(json.dumps(hello).encode())
    try:
        _serve(conn, context, slot)
    finally:
        sandbox.close_warm()  # the warm sandbox the tasks started, and all it runs


def _serve(conn, context, slot):
    from .grade import grade

    while True:
        try:
            task = json.loads(conn.recv_bytes())
        except EOFError:
            return
        if task is None:
            return
        student, path, scratch, error = task
        try:
            result = grade(student, Path(path), context, Path(scratch), slot, error).to_json()
        except MemoryError:
            result = {"failure": "memory: grading your submission needed more memory than the grader allows"}
        except Exception as exc:  # noqa: BLE001 - a grader bug costs this student, never the batch
            import sys
            import traceback
            print(f"\ninternal error grading {student}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            result = {"failure": f"internal: the grader failed on this submission ({type(exc).__name__}); your "
                                 "instructor has the details"}
        conn.send_bytes(json.dumps(result).encode())


class Worker:
    def __init__(self, context, slot, memory_bytes):
        ctx = multiprocessing.get_context(START_METHOD)
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child_conn, context, slot, memory_bytes),
                                   daemon=True, name=f"grader-{slot}")
        self.process.start()
        child_conn.close()
        self.hello = json.loads(self.conn.recv_bytes())
        self.task, self.started = None, 0.0

    def send(self, task):
        self.task, self.started = task, time.monotonic()
        self.conn.send_bytes(json.dumps(task).encode())

    def stop(self, grace_s=10.0):
        """End the worker: SIGTERM (it cleans up its sandbox), then SIGKILL after `grace_s`."""
        with contextlib.suppress(OSError):
            self.process.terminate()
        self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def failed(student, path, columns, cause) -> dict:
    """A result for a student whose grading could not finish: every check 0, with the cause."""
    from .grade import StudentResult

    note = "not graded: " + cause.split(": ", 1)[-1]
    return StudentResult(student, str(path), [Result(n, t, 0, p, False, note) for n, t, p in columns],
                         cause=cause).to_json()


def _death(worker) -> str:
    code = worker.process.exitcode
    if code == -signal.SIGKILL:
        return "memory: grading your submission needed more memory than the machine could give (the worker was killed)"
    return f"internal: a grading process ended unexpectedly (exit code {code}); your instructor has the details"


def grade_all(tasks, context, jobs, deadline_s, memory_bytes=0, hellos=None):
    """Yield each task's result (StudentResult as JSON) as it finishes, `jobs` at a time. `tasks`: (student, path,
    scratch, error). A worker that dies or runs past `deadline_s` on one student is replaced."""
    from .grade import StudentResult

    columns = context.checklist.columns()
    pending = deque(tasks)
    workers = []

    def start(slot):
        worker = Worker(context, slot, memory_bytes)
        if hellos is not None:  # every worker's, replacements too: the summary shows how each was started
            hellos.append(worker.hello)
        return worker

    try:
        for slot in range(1, min(jobs, len(pending)) + 1):
            workers.append(start(slot))
        while pending or any(w.task for w in workers):
            broken = set()
            for w in workers:
                if w.task is None and pending:
                    try:
                        w.send(pending.popleft())
                    except OSError:  # the worker died while idle: its task goes to a fresh one
                        broken.add(w)
            busy = [w for w in workers if w.task and w not in broken]
            ready = wait([w.conn for w in busy], timeout=1.0) if busy else []
            for i, w in enumerate(workers):
                if not w.task:
                    continue
                student, path = w.task[0], w.task[1]
                if w in broken:
                    pending.appendleft(w.task)
                    w.stop(grace_s=1.0)
                    workers[i] = start(i + 1)
                    continue
                if w.conn in ready:
                    try:
                        data = json.loads(w.conn.recv_bytes())
                    except (EOFError, OSError):
                        w.process.join(5)
                        data = {"failure": _death(w)}
                elif time.monotonic() - w.started > deadline_s:
                    data = {"failure": TIMEOUT_CAUSE.format(deadline_s)}
                else:
                    continue
                if "failure" in data:  # the worker is in an unknown state: a fresh one takes its place
                    w.stop(grace_s=2.0)
                    data = failed(student, path, columns, data["failure"])
                    w.task = None
                    if pending:
                        workers[i] = start(i + 1)
                else:
                    w.task = None
                yield StudentResult.from_json(data)
    finally:
        for w in workers:
            w.stop()
