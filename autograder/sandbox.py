"""Sandbox: run the export of one submission in a confined child process and say plainly how it ended.

The confinement is bubblewrap's (`bwrap`, a well-kept tool) wherever it works: the child gets a root of its own
holding only /usr, the Python it runs, the site-packages it imports (read-only, under neutral paths) and its
scratch dir (as /sandbox); a private /tmp and /dev/shm of bounded size; its own PID namespace (it sees no other
process: not the grader, not another student's child), no network, and it dies with its parent. It never sees the
checkout, the hidden checks, the solutions, OUT, the data, or other students' files.

Always, besides: its own session and process group (killed whole at the end), a wall-clock timeout, caps on address
space, CPU time, file size and core files, an environment with nothing but PATH/HOME/LANG and thread counts, and
stdout/stderr read through pipes keeping only the first and last few KB. As root (a Gradescope or Docker grader)
the child also runs under an unprivileged uid that no other child holds at the same time, not even one of another
`autograde` run (claimed with a lock), and in a cgroup that caps the memory and process count of everything it
starts. Where bubblewrap is missing or refused, the child runs without it and `isolation()` says what it lacks.
"""
import contextlib
import ctypes
import fcntl
import functools
import json
import os
import resource
import shutil
import signal
import socket
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
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
INSIDE = "/sandbox"  # the child's working dir, as the child sees it under bubblewrap
CHILD_UID_BASE, CHILD_UIDS = 61000, 1000
UID_LOCKS = Path("/run/lock/cnnkit-uids")


@dataclass
class Limits:
    timeout_s: float = 180.0
    memory_bytes: int = 4 << 30  # address space per process: torch's import alone maps ~2 GB
    memory_total: int = 6 << 30  # everything the child starts together, where a cgroup can say so
    processes: int = 128  # processes and threads of the child together, where a cgroup can say so
    file_bytes: int = 256 << 20
    tmp_bytes: int = 256 << 20  # each of the child's private /tmp and /dev/shm
    output_bytes: int = 16 << 10  # kept from each of stdout and stderr (head and tail)
    threads: int = 2
    warm: bool = True  # fork each child from a warm sandbox where the machine confines it as a cold one


@dataclass
class Outcome:
    returncode: int
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str
    lost: bool = False  # the warm sandbox's server ended while the child ran (the child killed it, say)

    @property
    def cause(self):
        """Why the child did not finish normally, in a student's words; None when it did."""
        if self.timed_out:
            return "timeout: building and exporting the models did not finish in time (an endless loop?)"
        if self.lost:
            return "exit: the grader's sandbox process ended while running the code (did it kill its parent " \
                   "process, or run out of memory?)"
        if "MemoryError" in self.stderr or self.returncode in (-signal.SIGKILL, -signal.SIGSEGV):
            return "memory: the code asked for more memory than the grader allows"
        if self.returncode == -signal.SIGXCPU:
            return "timeout: the code used more CPU time than the grader allows"
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


# ---- what this machine allows, probed once ---------------------------------------------------------------------

def _reachable_by_others(path) -> bool:
    """Whether a user who is neither owner nor group can reach (and read/run) `path`."""
    path = Path(path).resolve()
    if not path.exists():
        return False
    dirs_ok = all(os.stat(d).st_mode & stat.S_IXOTH for d in path.parents)
    mode = os.stat(path).st_mode
    return dirs_ok and bool(mode & stat.S_IROTH) and (path.is_dir() or bool(mode & stat.S_IXOTH))


def _site_dirs() -> tuple:
    return tuple(d for d in sys.path if d.endswith("site-packages") and Path(d).is_dir())


@functools.lru_cache(maxsize=None)
def child_interpreter():
    """(python, site dirs) for a child that drops privileges, or None if no interpreter of this Python version is
    reachable by an unprivileged user (e.g. pyenv's under /root)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not all(_reachable_by_others(d) for d in _site_dirs()):
        return None
    for candidate in (sys.executable, shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")):
        if candidate and _reachable_by_others(candidate):
            # the real file: a venv's bin/python is a link that bubblewrap's root would not hold (the site dirs
            # are handed to the child apart)
            return str(Path(candidate).resolve()), list(_site_dirs())
    return None


@functools.lru_cache(maxsize=None)
def network_can_be_cut() -> bool:
    """Whether this machine lets the grader give a child a network namespace of its own (probed once)."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        os._exit(0 if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0


@dataclass(frozen=True)
class Jail:
    """How children are confined on this machine."""
    bwrap: str  # path of bubblewrap, or "" when it cannot be used
    drop: bool  # the child runs under an unprivileged uid of its own (the grader is root)
    python: str
    site_dirs: tuple
    cgroup: str  # "v1", "v2" or "" (none: memory is capped per process only)


def _bwrap_works(bwrap, python, site_dirs, drop_to) -> bool:
    """Whether a confined child can start and import what the export needs."""
    scratch = Path(tempfile.mkdtemp(prefix="autograde-probe-"))
    try:
        os.chmod(scratch, 0o777)
        argv = _bwrap_argv(bwrap, python, site_dirs, scratch, Limits()) + [
            "-I", "-c", "import sys; sys.path[:0] = " + repr(_inside_site_dirs(site_dirs)) + "; import safetensors"]
        preexec = (lambda: (os.setgroups([]), os.setgid(drop_to), os.setuid(drop_to))) if drop_to else None
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                               preexec_fn=preexec).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def jail() -> Jail:
    bwrap = shutil.which("bwrap") or ""
    root = os.geteuid() == 0
    cgroup = _cgroup_kind() if root else ""
    if root and child_interpreter():
        python, site_dirs = child_interpreter()
        if bwrap and _bwrap_works(bwrap, python, site_dirs, CHILD_UID_BASE + CHILD_UIDS - 1):
            return Jail(bwrap, True, python, tuple(site_dirs), cgroup)
        return Jail("", True, python, tuple(site_dirs), cgroup)
    python, site_dirs = str(Path(sys.executable).resolve()), _site_dirs()
    if bwrap and _bwrap_works(bwrap, python, site_dirs, None):
        return Jail(bwrap, False, python, site_dirs, cgroup)
    return Jail("", False, sys.executable, site_dirs, cgroup)


def isolation(warm: bool = Limits.warm) -> list:
    """What the child gets on this machine, said plainly (summary.json, the terminal and the README)."""
    j = jail()
    modes = ["own process group", "timeout", "memory cap per process", "CPU-time cap", "scrubbed environment"]
    if j.bwrap:
        modes += ["bubblewrap: sees only /usr, Python and its scratch dir; private /tmp and /dev/shm; own PID "
                  "namespace; no network"]
    else:
        modes += ["WARNING: NOT confined (bubblewrap is missing or refused: install the Debian/Ubuntu package "
                  "`bubblewrap`): the child can read what the grader's user can read, the checks and other "
                  "students' files included" + ("" if j.drop else ", and write there too")]
        if j.drop:
            modes.append("no network" if network_can_be_cut() else "network NOT blocked: this machine refused a "
                                                                   "network namespace")
        else:
            modes.append("network NOT blocked")
    if j.drop:
        modes.append("own unprivileged uid, never shared with another child")
    elif os.geteuid() == 0:
        modes.append("WARNING: runs as root, since no Python interpreter is reachable by an unprivileged user")
    modes.append(f"cgroup ({j.cgroup}): memory and process count of the whole child capped" if j.cgroup else
                 "no cgroup (needs root): memory is capped per process only, process count not capped")
    if warm and warm_possible():
        modes.append("warm start: each child is forked from a sandboxed process, confined as above, that has "
                     "imported torch and never reads a submission; what a child leaves running is killed and what "
                     "it wrote removed before the next")
    return modes


# ---- per-child resources: a uid of its own, a cgroup --------------------------------------------------------------

@contextlib.contextmanager
def claimed_uid():
    """An unprivileged uid no other child holds, across every `autograde` run on the machine (a lock per uid)."""
    UID_LOCKS.mkdir(parents=True, exist_ok=True)
    os.chmod(UID_LOCKS, 0o700)
    for uid in range(CHILD_UID_BASE, CHILD_UID_BASE + CHILD_UIDS - 1):  # the last one is the probe's
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            _kill_all_of(uid)  # a child of a run that died without cleaning up
            yield uid
        finally:
            _kill_all_of(uid)
            os.close(fd)
        return
    raise RuntimeError(f"all {CHILD_UIDS - 1} sandbox uids are in use")


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


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_kind() -> str:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return "v2" if os.access(CGROUP_ROOT, os.W_OK) else ""
    ok = all(os.access(CGROUP_ROOT / c, os.W_OK) for c in ("memory", "pids"))
    return "v1" if ok else ""


class Cgroup:
    """A cgroup (v1: memory + pids; v2: the unified tree) for one child and everything it starts."""

    def __init__(self, kind: str, limits: Limits):
        name = f"cnnkit-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        if kind == "v2":
            self.dirs = [CGROUP_ROOT / name]
            settings = {"memory.max": limits.memory_total, "memory.swap.max": 0, "pids.max": limits.processes}
        else:
            self.dirs = [CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "pids" / name]
            settings = {"memory.limit_in_bytes": limits.memory_total, "pids.max": limits.processes}
        for d in self.dirs:
            d.mkdir()
        for key, value in settings.items():
            for d in self.dirs:
                with contextlib.suppress(OSError):
                    if (d / key).exists():
                        (d / key).write_text(str(value))
        self.procs = [os.open(d / "cgroup.procs", os.O_WRONLY) for d in self.dirs]

    def join(self):
        """Called in the child before exec: it and all it starts belong to the cgroup."""
        for fd in self.procs:
            os.write(fd, b"0")

    def close(self):
        for fd in self.procs:
            os.close(fd)
        for _ in range(50):
            pids = set()
            for d in self.dirs:
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                break
            time.sleep(0.02)
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


# ---- the child ---------------------------------------------------------------------------------------------------

def _inside_site_dirs(site_dirs) -> list:
    return [f"/opt/site/{i}" for i in range(len(site_dirs))]


def _bwrap_argv(bwrap, python, site_dirs, workdir: Path, limits: Limits, as_pid_1=False) -> list:
    """bubblewrap's command line: a root holding /usr, the interpreter, site-packages and the scratch dir, where
    only the scratch dir, /tmp, /dev/shm and /dev/mqueue are writable. `as_pid_1`: the command is the PID
    namespace's first process (the warm sandbox's server), not a child of bubblewrap's own."""
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    args += ["--as-pid-1"] if as_pid_1 else []
    for top in ("lib", "lib64", "lib32", "bin", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        if Path(etc).exists():
            args += ["--ro-bind", etc, etc]
    prefix = Path(python).resolve().parents[1]
    if not str(prefix).startswith("/usr"):
        args += ["--ro-bind", str(prefix), str(prefix)]
    for outside, inside in zip(site_dirs, _inside_site_dirs(site_dirs)):
        args += ["--ro-bind", outside, inside]
        if (Path(outside) / "autograder").exists():  # the kit itself, if installed there: its checks
            args += ["--tmpfs", f"{inside}/autograder"]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
             "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm", "--mqueue", "/dev/mqueue",
             "--bind", str(workdir), INSIDE, "--remount-ro", "/", "--remount-ro", "/dev", "--chdir", INSIDE]
    return [bwrap, *args, python]


def cpu_seconds(limits: Limits) -> int:
    """The CPU time a child may use: its wall-clock limit on every thread it may run, and a margin."""
    return int(limits.timeout_s * max(limits.threads, 1)) + 10


def _preexec(limits: Limits, uid, cgroup, network_cut, cpu):
    def setup():
        os.setsid()
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the grader, even a killed one
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        if cgroup:
            cgroup.join()
        if network_cut and _LIBC.unshare(CLONE_NEWNET) != 0:
            os._exit(70)  # promised no network and could not keep the promise: run nothing
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    return setup


def scratch_dir() -> Path:
    """A fresh dir for the children's working dirs: traversable (not listable) by their uids."""
    path = Path(tempfile.mkdtemp(prefix="autograde-"))
    os.chmod(path, 0o711)
    return path


def protect(paths):
    """When root: make the grader's own files unreadable to the children's uids (the unconfined fallback)."""
    if os.geteuid() == 0:
        for p in paths:
            if Path(p).exists():
                os.chmod(p, 0o700)


@contextlib.contextmanager
def _confinement(folder: Path, limits: Limits, cpu=None, as_pid_1=False):
    """(argv so far, cwd, env, pass_fds, preexec, the folder as the child sees it, the child's uid or None) to start
    this Python confined,
    with `folder` (and only it) as its working dir; the uid and cgroup are the child's while the context lasts.
    `folder` and what it holds are handed to that uid. `cpu`: its CPU-time limit, if not a child's."""
    j = jail()
    if j.drop and not all(os.stat(d).st_mode & stat.S_IXOTH for d in folder.resolve().parents):
        raise RuntimeError(f"{folder} is not reachable by an unprivileged uid: make it in sandbox.scratch_dir()")
    inside = Path(INSIDE) if j.bwrap else folder
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(inside), "TMPDIR": "/tmp" if j.bwrap else str(folder),
        "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(limits.threads),
        "MKL_NUM_THREADS": str(limits.threads), "CUDA_VISIBLE_DEVICES": "",
    }
    with contextlib.ExitStack() as stack:
        uid = stack.enter_context(claimed_uid()) if j.drop else None
        if uid is not None:
            for p in [folder, *folder.iterdir()]:
                os.chown(p, uid, uid)
        cgroup = None
        if j.cgroup:
            with contextlib.suppress(OSError):
                cgroup = Cgroup(j.cgroup, limits)
                stack.callback(cgroup.close)
        if j.bwrap:
            argv = _bwrap_argv(j.bwrap, j.python, j.site_dirs, folder, limits, as_pid_1)
            read_end, write_end = os.pipe()  # bwrap reads its arguments from here, so /proc shows none of them
            os.write(write_end, b"\0".join(a.encode() for a in argv[1:-1]) + b"\0")
            os.close(write_end)
            stack.callback(os.close, read_end)
            argv = [argv[0], "--args", str(read_end), argv[-1]]
            pass_fds, cwd = (read_end,), "/"
        else:
            argv, pass_fds, cwd = [j.python], (), folder
        yield argv, cwd, env, pass_fds, _preexec(limits, uid, cgroup, j.drop and not j.bwrap and
                                                 network_can_be_cut(), cpu or cpu_seconds(limits)), inside, uid


def _site_as_seen() -> list:
    j = jail()
    return _inside_site_dirs(j.site_dirs) if j.bwrap else list(j.site_dirs)


def run_export(request: dict, workdir: Path, limits: Limits = Limits(), slot: int = 1) -> Outcome:
    """Run export.py on `request` in `workdir` (made empty and private to the child): in a child forked by this
    process's warm sandbox when `workdir` is one of its dirs (`new_workdir`), else in a fresh process. `slot` is
    kept for callers; children that run at once never share a uid whatever it is."""
    for warm in _WARM.values():
        if warm.holds(workdir):
            return warm.run(request, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXPORT_SCRIPT, workdir / "export.py")
    inside = Path(INSIDE) if jail().bwrap else workdir
    (workdir / "request.json").write_text(json.dumps({**request, "out": str(inside), "path": _site_as_seen()}))
    with _confinement(workdir, limits) as (argv, cwd, env, pass_fds, preexec, inside, _):
        argv += ["-I", f"{inside}/export.py", "request.json"]
        return _run(argv, cwd, env, pass_fds, limits, preexec)


# ---- the warm sandbox ------------------------------------------------------------------------------------------

class Warm:
    """A sandboxed process, confined as a cold child is, that has imported torch and warmed up torch.export once,
    and forks a fresh child per submission (export.py's `serve`): the child starts in a fraction of a second and
    its first export is not the slow one. Between children, the server kills whatever the last one left running,
    empties the private /tmp, /dev/shm and /dev/mqueue and checks its own state, and this side empties the base
    dir; a server that could not clean up, was changed, died or stopped answering is replaced. The children's
    dirs live in a base dir of their own (the sandbox's /sandbox), which holds one child's dir at a time."""

    def __init__(self, scratch: Path, limits: Limits):
        self.scratch, self.limits = scratch, limits
        self.process, self.control, self.stack, self.base = None, None, None, None
        self.stale = []  # base dirs of ended servers: their last child's files are read before they go

    def holds(self, workdir: Path) -> bool:
        return self.process is not None and self.base is not None and workdir.parent == self.base

    def _start(self):
        self.stack = contextlib.ExitStack()
        self.base = Path(tempfile.mkdtemp(prefix="warm-", dir=self.scratch))
        try:
            self._start_server()
        except BaseException:
            self.stack.close()  # the uid and cgroup it claimed
            self.process = None
            remove(self.base)
            raise

    def _start_server(self):
        j = jail()
        os.chmod(self.base, 0o711)
        shutil.copy(EXPORT_SCRIPT, self.base / "export.py")
        os.chmod(self.base / "export.py", 0o644)
        # no CPU-time limit of a child's on the server, which runs no student code and lives a whole batch: each
        # child sets its own after the fork
        confinement = self.stack.enter_context(_confinement(self.base, self.limits, resource.RLIM_INFINITY,
                                                            as_pid_1=True))
        argv, cwd, env, pass_fds, preexec, self.inside, self.uid = confinement
        if self.uid is not None:  # the base dir stays the grader's: a child can create nothing in it, only in its
            os.chown(self.base, 0, 0)  # own dir
            os.chown(self.base / "export.py", 0, 0)
        config = {"path": _site_as_seen(), "base": str(self.inside), "threads": self.limits.threads,
                  "timeout_s": self.limits.timeout_s, "cpu_s": cpu_seconds(self.limits),
                  "wipe": ["/tmp", "/dev/shm", "/dev/mqueue"] if j.bwrap else []}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                argv + ["-I", f"{self.inside}/export.py", "--serve", json.dumps(config)], cwd=cwd, env=env,
                stdin=theirs.fileno(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec,
                close_fds=True, pass_fds=pass_fds)
        finally:
            theirs.close()
        self.control = ours
        self.logs = (_Capture(self.process.stdout, self.limits.output_bytes),
                     _Capture(self.process.stderr, self.limits.output_bytes))
        hello = self._reply(120.0)
        if not (hello and hello.get("ready") is True):
            said = self.logs[1].text()[-600:]
            self._stop()
            raise RuntimeError(f"the warm sandbox did not start: {said}")
        (self.base / "export.py").unlink()  # read once; the base dir is empty between children from now on

    def _reply(self, timeout_s):
        """The server's next message as a dict, or None (it ended, stopped answering, or said nonsense)."""
        self.control.settimeout(timeout_s)
        try:
            data = json.loads(self.control.recv(4096))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def workdir(self) -> Path:
        """A fresh dir for the next child, inside the base dir; the server is (re)started first when needed: when
        it ended since the last child, or something of the last child would stay beside the next."""
        while self.stale:
            remove(self.stale.pop())
        if self.process is not None and (self.process.poll() is not None or not self._tidy()):
            self.close()
        if self.process is None:
            self._start()
        workdir = Path(tempfile.mkdtemp(prefix="w_", dir=self.base))
        if self.uid is not None:
            os.chown(workdir, self.uid, self.uid)
        return workdir

    def run(self, request: dict, workdir: Path) -> Outcome:
        data = json.dumps({**request, "out": str(self.inside / workdir.name), "path": _site_as_seen()}).encode()
        fd = os.open(workdir / "request.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
            if self.uid is not None:
                os.fchown(fd, self.uid, self.uid)
        finally:
            os.close(fd)
        started = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            socket.send_fds(self.control, [json.dumps({"dir": workdir.name}).encode()], [out_w, err_w])
        except OSError:
            reply = None
        else:
            reply = "sent"
        finally:
            os.close(out_w)
            os.close(err_w)
        out, err = _Capture(os.fdopen(out_r, "rb"), self.limits.output_bytes), \
            _Capture(os.fdopen(err_r, "rb"), self.limits.output_bytes)
        if reply:
            reply = self._reply(self.limits.timeout_s + 30.0)
        ok = reply is not None and isinstance(reply.get("status"), int) and isinstance(reply.get("timed_out"),
                                                                                         bool)
        if not ok or reply.get("clean") is not True:
            self._stop()  # the next child gets a fresh server; this one's files stay to be read
        out.join(5)
        err.join(5)
        seconds = time.monotonic() - started
        over = seconds > self.limits.timeout_s + 5  # the server was stopped by the child, say
        if not ok:
            return Outcome(-signal.SIGKILL, over, seconds, out.text(), err.text(), lost=not over)
        return Outcome(os.waitstatus_to_exitcode(reply["status"]), reply["timed_out"] or over, seconds, out.text(),
                       err.text())

    def _tidy(self) -> bool:
        """Empty the base dir: the last child's dir (its grader removes it too) and what a child made beside it
        (possible only where it runs as the grader's own user: bubblewrap, no uid to drop to), modes it set
        included. Whether it is empty."""
        try:
            os.chmod(self.base, 0o711)
            for entry in os.scandir(self.base):
                remove(Path(entry.path))
            return not os.listdir(self.base)
        except OSError:
            return False

    def _stop(self):
        """End the server and everything it started; free its uid and cgroup. Its base dir stays until the next
        child's dir is made (or `close`), so the last child's files can still be read."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.control.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        _until_gone(self.process.pid)
        self.stack.close()
        self.process = None
        self.stale.append(self.base)

    def close(self):
        """End the server, and remove every base dir it had."""
        self._stop()
        while self.stale:
            remove(self.stale.pop())


def remove(path: Path):
    """Remove `path` and all under it, whatever modes a child gave its dirs and however deep: coreutils' `chmod -R`
    and `rm -rf` walk any depth and never follow a link met on the way (a link given as `path` is removed)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
        return
    for argv in (["chmod", "-R", "u+rwx", "--", str(path)], ["rm", "-rf", "--", str(path)]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=300, check=False)
    with contextlib.suppress(RecursionError):  # where coreutils are missing
        shutil.rmtree(path, ignore_errors=True)


_WARM = {}  # scratch dir -> this process's Warm for it


def warm_possible() -> bool:
    """Whether this machine confines a warm sandbox's children as it would cold ones: under bubblewrap, or under a
    uid of their own (kill(-1) then reaches exactly the sandbox's processes). Otherwise children start cold."""
    j = jail()
    return bool(j.bwrap or j.drop)


def new_workdir(scratch: Path, limits: Limits) -> Path:
    """A fresh working dir for one child under `scratch`: one of this process's warm sandbox when `limits.warm`
    and the machine allow it (started on first use), else a plain dir for a cold child."""
    if limits.warm and warm_possible():
        warm = _WARM.setdefault(Path(scratch), Warm(Path(scratch), limits))
        try:
            return warm.workdir()
        except (OSError, RuntimeError) as exc:
            print(f"autograde: the warm sandbox is unavailable, so each child starts cold ({exc})", file=sys.stderr)
            limits.warm = False
    return Path(tempfile.mkdtemp(prefix="sandbox-", dir=scratch))


def close_warm():
    """End this process's warm sandboxes (a worker's last act)."""
    while _WARM:
        _WARM.popitem()[1].close()


def _run(argv, cwd, env, pass_fds, limits: Limits, preexec) -> Outcome:
    started = time.monotonic()
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=preexec, close_fds=True, pass_fds=pass_fds)
    out, err = _Capture(child.stdout, limits.output_bytes), _Capture(child.stderr, limits.output_bytes)
    timed_out = False
    try:
        child.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the whole group: nothing it started outlives it
        child.wait()
        _until_gone(child.pid)
    out.join(5)
    err.join(5)
    return Outcome(child.returncode, timed_out, time.monotonic() - started, out.text(), err.text())


def _until_gone(pgid: int, most_s: float = 5.0):
    """Wait (bounded) until no process of the group is left: SIGKILL is delivered asynchronously, and on a loaded
    machine a grandchild can still be alive for a moment after its group was killed."""
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def read_plain_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file the child wrote: never through a symlink, never blocking on a FIFO or device,
    never more than `limit`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)
