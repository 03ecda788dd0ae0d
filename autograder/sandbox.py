"""Sandbox: run the export of one submission in a limited child process and say plainly how it ended.

Always: a new session and process group (killed whole on timeout), a scratch working dir holding only the request
and the export script, a wall-clock timeout, an address-space cap, no core files, a cap on file size, an
environment with nothing but PATH/HOME/LANG and thread counts, stdout/stderr read through pipes keeping only the
first and last few KB. When the grader runs as root (a Gradescope or Docker grader) the child also drops to an
unprivileged uid of its own (61000 + the worker's slot, so two children running at once cannot touch each other's
files; every process left with that uid is killed after the run), cannot read what is not world-readable (the
grader makes its hidden checks, the solutions and the output folder so), and gets a network namespace of its own
(no network). Run as an ordinary user, the child is that user: it could read what that user can read. The README
says so.
"""
import ctypes
import functools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

EXPORT_SCRIPT = Path(__file__).with_name("export.py")
CLONE_NEWNET = 0x40000000


@dataclass
class Limits:
    timeout_s: float = 180.0
    memory_bytes: int = 4 << 30  # address space: torch's import alone maps ~2 GB
    file_bytes: int = 256 << 20
    output_bytes: int = 16 << 10  # kept from each of stdout and stderr (head and tail)
    threads: int = 2


@dataclass
class Outcome:
    returncode: int
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str

    @property
    def cause(self):
        """Why the child did not finish normally, in a student's words; None when it did."""
        if self.timed_out:
            return "timeout: building and exporting the models did not finish in time (an endless loop?)"
        if "MemoryError" in self.stderr or self.returncode == -signal.SIGKILL:
            return "memory: the code asked for more memory than the grader allows"
        if self.returncode == -signal.SIGXFSZ:
            return "output: the code wrote a file larger than the grader allows"
        if self.returncode != 0:
            return f"exit: the code ended the process early (exit status {self.returncode}; sys.exit or os._exit?)"
        return None


class _Capture(threading.Thread):
    """Reads a pipe to the end, keeping its first and last `limit // 2` bytes."""

    def __init__(self, pipe, limit):
        super().__init__(daemon=True)
        self.pipe, self.half, self.head, self.tail, self.dropped = pipe, limit // 2, b"", b"", 0
        self.start()

    def run(self):
        for chunk in iter(lambda: self.pipe.read(65536), b""):
            room = self.half - len(self.head)
            self.head, chunk = self.head + chunk[:max(room, 0)], chunk[max(room, 0):]
            joined = self.tail + chunk
            self.dropped += max(len(joined) - self.half, 0)
            self.tail = joined[-self.half:] if self.half else b""

    def text(self):
        middle = f"\n[... {self.dropped} bytes not kept ...]\n".encode() if self.dropped else b""
        return (self.head + middle + self.tail).decode("utf-8", "replace")


CHILD_UID_BASE = 61000


def _kill_all_of(uid):
    """Kill every process running as `uid` (as that uid: kill(-1) reaches exactly its own processes)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _reachable_by_others(path) -> bool:
    """Whether a user who is neither owner nor group can reach (and read/run) `path`."""
    path = Path(path).resolve()
    if not path.exists():
        return False
    dirs_ok = all(os.stat(d).st_mode & stat.S_IXOTH for d in path.parents)
    mode = os.stat(path).st_mode
    return dirs_ok and bool(mode & stat.S_IROTH) and (path.is_dir() or bool(mode & stat.S_IXOTH))


@functools.lru_cache(maxsize=None)
def network_can_be_cut() -> bool:
    """Whether this machine lets the grader give a child a network namespace of its own (probed once)."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        os._exit(0 if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


@functools.lru_cache(maxsize=None)
def child_interpreter():
    """(python, extra sys.path) for the child when it drops privileges, or None if no interpreter of this
    Python version is reachable by an unprivileged user (e.g. pyenv's under /root)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dirs = tuple(d for d in sys.path if d.endswith("site-packages") and Path(d).is_dir())
    if not all(_reachable_by_others(d) for d in site_dirs):
        return None
    for candidate in (sys.executable, shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")):
        if candidate and _reachable_by_others(candidate):
            return candidate, list(site_dirs)
    return None


def isolation() -> list:
    """What the child gets on this machine, said plainly (summary.json and the README)."""
    modes = ["own process group", "timeout", "memory cap", "scrubbed environment", "scratch dir"]
    if os.geteuid() != 0:
        return modes + ["runs as the grader's own user: it can read what that user can read"]
    if child_interpreter() is None:
        return modes + ["WARNING: runs as root, since no Python interpreter is reachable by an unprivileged user"]
    return modes + ["own unprivileged uid", "no network" if network_can_be_cut() else
                    "network NOT blocked: this machine refused a network namespace"]


def scratch_dir() -> Path:
    """A fresh dir for the children's working dirs: traversable (not listable) by their uids."""
    path = Path(tempfile.mkdtemp(prefix="autograde-"))
    os.chmod(path, 0o711)
    return path


def protect(paths):
    """When root: make the grader's own files unreadable to the children's uids."""
    if os.geteuid() == 0:
        for p in paths:
            if Path(p).exists():
                os.chmod(p, 0o700)


def _preexec(limits: Limits, drop):
    def setup():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        if drop:
            if network_can_be_cut() and ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
                os._exit(70)  # promised no network and could not keep the promise: run nothing
            uid, gid = drop
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
    return setup


def run_export(request: dict, workdir: Path, limits: Limits = Limits(), slot: int = 1) -> Outcome:
    """Run export.py on `request` in `workdir` (made empty and private to the child). `slot` tells apart
    children that run at the same time."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXPORT_SCRIPT, workdir / "export.py")
    python, site_dirs = sys.executable, []
    drop = None
    if os.geteuid() == 0 and child_interpreter():
        python, site_dirs = child_interpreter()
        network_can_be_cut()  # probed here, before the child's preexec needs the answer
        if not all(os.stat(d).st_mode & stat.S_IXOTH for d in workdir.resolve().parents):
            raise RuntimeError(f"{workdir} is not reachable by an unprivileged uid: make it in sandbox.scratch_dir()")
        drop = (CHILD_UID_BASE + slot, CHILD_UID_BASE + slot)
        os.chown(workdir, *drop)
    (workdir / "request.json").write_text(json.dumps({**request, "out": str(workdir), "path": site_dirs}))
    if drop:
        for p in workdir.iterdir():
            os.chown(p, *drop)
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads), "CUDA_VISIBLE_DEVICES": "",
    }
    started = time.monotonic()
    child = subprocess.Popen(
        [python, "-I", "export.py", "request.json"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_preexec(limits, drop), close_fds=True)
    out, err = _Capture(child.stdout, limits.output_bytes), _Capture(child.stderr, limits.output_bytes)
    timed_out = False
    try:
        child.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the whole group: nothing it started outlives it
        except ProcessLookupError:
            pass
        child.wait()
        if drop:
            _kill_all_of(drop[0])  # whatever it left running, in a session of its own or not
    out.join(5)
    err.join(5)
    return Outcome(child.returncode, timed_out, time.monotonic() - started, out.text(), err.text())


def read_plain_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file the child wrote: never through a symlink, never more than `limit`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not (info.st_mode & 0o170000 == 0o100000):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)
