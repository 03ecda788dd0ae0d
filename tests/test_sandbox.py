"""The sandbox's promises, observed from inside the child: what it can reach by every route, who it runs as, what
it sees, what it leaves behind. Each probe reports what it saw in its exception message, which the child records
as a note; "blocked" means the route failed inside the child."""
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.assignments import ROOT

CONFINED = bool(sandbox.jail().bwrap)
needs_bwrap = pytest.mark.skipif(not CONFINED and os.environ.get("CI") != "true",
                                 reason="bubblewrap is not installed here (CI installs it): the child is not confined")


WARM = sandbox.warm_possible()
MODES = ["cold", pytest.param("warm", marks=pytest.mark.skipif(not WARM, reason="no warm sandbox here: neither "
                                                                              "bubblewrap nor a uid to drop to"))]


def chunks_of(code_by_name: dict) -> list:
    """Each probe's code in a class body (the loader's definitions run class bodies)."""
    return [{"label": name, "code": "class Probe:\n" + "\n".join("    " + line for line in code.splitlines())}
            for name, code in code_by_name.items()]


def notes_of(workdir: Path) -> dict:
    notes = json.loads((workdir / "definitions.json").read_text())["notes"]
    return {note.split(",", 1)[0]: note.split(": ", 2)[-1] for note in notes}


def probe(code_by_name: dict, limits=sandbox.Limits(timeout_s=90), mode="cold"):
    """{name: what the probe saw} from one child that runs each probe's code in a class body: a fresh process
    (cold), or one forked by a warm sandbox that has served another child first (warm)."""
    scratch = sandbox.scratch_dir()
    try:
        if mode == "warm":
            first = sandbox.new_workdir(scratch, limits)
            assert sandbox.run_export({"chunks": [], "models": []}, first, limits).cause is None
            shutil.rmtree(first)
        work = sandbox.new_workdir(scratch, limits) if mode == "warm" else scratch / "work"
        assert (work.parent.name.startswith("warm-")) == (mode == "warm")
        outcome = sandbox.run_export({"chunks": chunks_of(code_by_name), "models": []}, work, limits)
        assert outcome.cause is None, outcome.stderr
        return notes_of(work)
    finally:
        sandbox.close_warm()
        shutil.rmtree(scratch, ignore_errors=True)


def reads(path):
    return f"raise RuntimeError('READ ' + open({str(path)!r}, 'rb').read(64).decode('latin1'))"


@pytest.fixture
def secrets(tmp_path, monkeypatch):
    """Files a child must never read: another student's, an OUT folder's, a data cache's; and an env secret."""
    files = {}
    for name in ("other_student.py", "out_results.json", "data_cache.bin"):
        files[name] = tmp_path / name
        files[name].write_text(f"SECRET {name}")
    os.chmod(tmp_path, 0o755)
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "do-not-leak")
    return files


@pytest.mark.parametrize("mode", MODES)
def test_the_child_never_sees_the_graders_environment(secrets, mode):
    seen = probe({"env": "import os\nraise RuntimeError(','.join(sorted(os.environ)))"}, mode=mode)
    assert set(seen["env"].split(",")) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
                                           "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LC_CTYPE", "TMPDIR", "PWD"}


@needs_bwrap
@pytest.mark.parametrize("mode", MODES)
def test_the_child_reaches_nothing_of_the_grader_by_any_route(secrets, mode):
    checks = ROOT / "solutions" / "resnet50_cifar10" / "checks.py"
    git = f"import subprocess\nr = subprocess.run(['git', '-C', {str(ROOT)!r}, 'cat-file', '-p', " \
          f"'HEAD:solutions/resnet50_cifar10/checks.py'], capture_output=True)\n" \
          f"raise RuntimeError('READ ' + r.stdout[:64].decode() if r.returncode == 0 else 'blocked')"
    site = "import sys, glob\nfound = [p for d in sys.path for p in glob.glob(d + '/*cnn_course_kit*')]\n" \
           "text = ''.join(open(p).read() for p in found if p.endswith('.py'))\n" \
           "import re\npaths = re.findall(r\"'(/[^']*autograder)'\", text)\n" \
           "raise RuntimeError('READ ' + open(paths[0] + '/../solutions/resnet50_cifar10/checks.py').read(64) if paths " \
           "else 'blocked')"
    seen = probe({
        "checks": reads(checks),
        "reference": reads(ROOT / "solutions" / "resnet50_cifar10" / "resnet50_skeleton.py"),
        "dotgit": reads(ROOT / ".git" / "HEAD"),
        "git": git,
        "site": site,
        "import": "import autograder.probes\nraise RuntimeError('READ imported')",
        "parent_cwd": "import os\nraise RuntimeError('READ ' + str(os.listdir(f'/proc/{os.getppid()}/cwd')))",
        "parent_env": "import os\nraise RuntimeError('READ ' + open(f'/proc/{os.getppid()}/environ').read())",
        "grader_env": f"raise RuntimeError('READ ' + open('/proc/{os.getpid()}/environ').read())",
        "processes": "import os\nraise RuntimeError('READ ' + str(sorted(p for p in os.listdir('/proc') "
                     "if p.isdigit())))",
        "other_student": reads(secrets["other_student.py"]),
        "out": reads(secrets["out_results.json"]),
        "data_cache": reads(secrets["data_cache.bin"]),
        "home": "import os\nraise RuntimeError('READ ' + str(os.listdir('/root')))",
    }, mode=mode)
    leaked = {k: v for k, v in seen.items() if "SECRET" in v or "do-not-leak" in v or "def test_" in v
              or "ResidualBlock" in v or "Hidden checks" in v or "ref: refs" in v or v.startswith("READ imported")}
    assert not leaked
    # the child sees only its own namespace: itself and bubblewrap's init (and, warm, the server that forked it)
    pids = eval(seen["processes"].removeprefix("READ "))
    assert "1" in pids and len(pids) <= 3, seen["processes"]
    assert seen["parent_env"] == "READ " or "GRADER_SECRET_TOKEN" not in seen["parent_env"]


@needs_bwrap
@pytest.mark.parametrize("mode", MODES)
def test_the_child_has_no_network_and_a_private_tmp(tmp_path, mode):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    marker = f"cnnkit-leftover-{os.getpid()}"
    try:
        seen = probe({
            "network": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                       "raise RuntimeError('CONNECTED')",
            "leftovers": f"open('/tmp/{marker}', 'w').write('x')\nopen('/dev/shm/{marker}', 'w').write('x')\n"
                         "raise RuntimeError('WROTE')",
        }, mode=mode)
    finally:
        server.close()
    assert "CONNECTED" not in seen["network"]
    assert seen["leftovers"] == "WROTE"
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/dev/shm/{marker}")


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.child_interpreter() is None,
                    reason="privileges are dropped only when the grader runs as root with a reachable interpreter")
@pytest.mark.parametrize("mode", MODES)
def test_as_root_the_child_is_an_unprivileged_uid_of_its_own(tmp_path, mode):
    secret = tmp_path / "root_only"
    secret.write_text("SECRET")
    os.chmod(secret, 0o600)
    seen = probe({"uid": "import os\nraise RuntimeError(os.getuid())", "secret": reads(secret)}, mode=mode)
    assert sandbox.CHILD_UID_BASE <= int(seen["uid"]) < sandbox.CHILD_UID_BASE + sandbox.CHILD_UIDS
    assert "SECRET" not in seen["secret"]
    assert "own unprivileged uid, never shared with another child" in sandbox.isolation()


@pytest.mark.skipif(os.geteuid() != 0, reason="uids are claimed only when the grader runs as root")
def test_children_of_two_runs_never_share_a_uid():
    """A uid held by another process (another `autograde` run) is skipped; two claims at once differ."""
    with sandbox.claimed_uid() as first:
        holder = subprocess.Popen(["python3", "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(sandbox.UID_LOCKS / str(first + 1))!r}, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            with sandbox.claimed_uid() as second:
                assert second not in (first, first + 1)
        finally:
            holder.kill()
            holder.wait()


def test_the_cgroup_caps_processes_where_there_is_one():
    if not sandbox.jail().cgroup:
        pytest.skip("no cgroup here (needs root and a writable cgroup tree): summary.json says so")
    code = "import subprocess\nstarted = []\ntry:\n    for _ in range(400):\n" \
           "        started.append(subprocess.Popen(['sleep', '313']))\nexcept OSError as e:\n" \
           "    raise RuntimeError(f'STOPPED at {len(started)}')\nraise RuntimeError('ALL 400')"
    seen = probe({"fork": code}, sandbox.Limits(timeout_s=90, processes=64))
    assert seen["fork"].startswith("STOPPED at"), seen["fork"]
    assert int(seen["fork"].split()[-1]) < 64
    assert not running(["sleep", "313"])


def test_output_is_bounded_and_the_group_is_killed_on_timeout(tmp_path):
    chunks = [{"label": "spam", "code": "class Spam:\n    print('x' * 5_000_000)\n    import subprocess\n"
                                        "    subprocess.Popen(['sleep', '300'])\n    while True:\n        pass\n"}]
    outcome = sandbox.run_export({"chunks": chunks, "models": []}, sandbox.scratch_dir() / "work",
                                 sandbox.Limits(timeout_s=20))
    assert outcome.timed_out and outcome.cause.startswith("timeout")
    assert len(outcome.stdout) < 20_000 and "bytes not kept" in outcome.stdout
    assert not running(["sleep", "300"])  # the grandchild went with the group


def test_a_fifo_is_never_opened_blocking(tmp_path):
    os.mkfifo(tmp_path / "net.json")
    with pytest.raises(ValueError, match="not a regular file"):
        sandbox.read_plain_file(tmp_path / "net.json", 1 << 20)
    (tmp_path / "real.json").write_text("{}")
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    with pytest.raises(OSError):
        sandbox.read_plain_file(tmp_path / "link.json", 1 << 20)


def test_isolation_says_what_this_machine_gives():
    said = " ".join(sandbox.isolation())
    if CONFINED:
        assert "bubblewrap" in said and "no network" in said and "NOT confined" not in said
    else:
        assert "WARNING: NOT confined" in said and "bubblewrap" in said
    if sandbox.jail().cgroup:
        assert "cgroup (" in said
    else:
        assert "no cgroup" in said


def test_the_child_interpreter_is_a_real_file_not_a_venvs_link():
    """A venv's bin/python links to the system's; bubblewrap's root holds /usr but not the venv's bin/, so a child
    started by the link's path could never start there (Gradescope's venv is one)."""
    found = sandbox.child_interpreter()
    if found is None:
        pytest.skip("no interpreter reachable by an unprivileged uid here")
    assert not Path(found[0]).is_symlink() and Path(found[0]).resolve() == Path(found[0])


def test_ci_confines_the_child():
    """CI installs bubblewrap (.ci/run): there the promise of confinement must hold, not be skipped."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI must have bubblewrap; a laptop may not")
    assert CONFINED, sandbox.isolation()


def running(argv):
    """Whether a process with exactly this argv is alive."""
    wanted = "\0".join(argv).encode() + b"\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == wanted:
                        return True
            except OSError:
                pass
    return False


# ---- the warm sandbox: nothing of one child reaches the next ---------------------------------------------------

needs_warm = pytest.mark.skipif(not WARM, reason="no warm sandbox here: neither bubblewrap nor a uid to drop to")


class Served:
    """Children forked, one after another, by one warm sandbox, as a grading worker's are."""

    def __init__(self, limits=sandbox.Limits(timeout_s=60)):
        self.scratch, self.limits = sandbox.scratch_dir(), limits

    def run(self, code_by_name: dict):
        work = sandbox.new_workdir(self.scratch, self.limits)
        try:
            outcome = sandbox.run_export({"chunks": chunks_of(code_by_name), "models": []}, work, self.limits)
            return outcome, notes_of(work) if (work / "definitions.json").exists() else {}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def server(self):
        return next(iter(sandbox._WARM.values())).process

    def close(self):
        sandbox.close_warm()
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture
def served():
    served = Served()
    yield served
    served.close()


MARKER = "cnnkit-" + "student-a-secret"  # never written whole in the second child's code


def in_function(code: str) -> str:
    """A probe's code as a function's body, called at once: comprehensions in a class body see no class names."""
    return "def probe():\n" + "\n".join("    " + line for line in code.splitlines()) + "\nprobe()"


@needs_warm
def test_a_warm_child_leaves_nothing_the_next_one_can_find(served):
    a = "M = " + repr(MARKER) + "\n"
    outcome, seen = served.run({
        "daemon": a + "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '317'], start_new_session=True)\n"
                  "raise RuntimeError('STARTED')",
        # the server is the namespace's PID 1: a signal from a child does not reach it
        "stops": "import os, signal\nif os.getppid() == 1:\n    os.kill(1, signal.SIGSTOP)\n"
                 "    os.kill(1, signal.SIGTERM)\nraise RuntimeError('SIGNALLED')",
        "files": a + "import os\nfor d in ('/tmp', '/dev/shm', '/dev/mqueue', '/dev', '/', '/etc', "
                 "os.environ['TMPDIR']):\n"
                 "    try:\n        open(os.path.join(d, 'left-by-a'), 'w').write(M)\n    except OSError:\n"
                 "        pass\n"
                 "try:\n    open('../planted.py', 'w').write(M)\nexcept OSError:\n    pass\n"
                 "raise RuntimeError('WROTE')"})
    assert outcome.cause is None and seen == {"daemon": "STARTED", "stops": "SIGNALLED", "files": "WROTE"}, \
        (outcome.stderr, seen)
    server = served.server().pid
    markers = "[('cnnkit-' + 'student-a-secret').encode(), ('cnnkit-' + 'student-c-secret').encode()]"
    outcome, seen = served.run({name: in_function(code) for name, code in {
        # every process but bubblewrap's init, the server and this child was killed
        "processes": "import os\nme = os.getpid()\nraise RuntimeError(sorted(open(f'/proc/{p}/cmdline', 'rb')"
                     ".read().decode(errors='replace') for p in os.listdir('/proc') if p.isdigit() and "
                     "int(p) not in (1, me, os.getppid())))",
        "files": "import os, glob\nraise RuntimeError(sorted(p for d in ('/tmp', '/dev/shm', '/dev/mqueue', "
                 "'/dev', '/', '/etc', '..') for p in glob.glob(d + '/*') if 'left-by-a' in p or 'planted' in p))",
        "memory": f"markers = {markers}\nfound = [0, 0]\n"
                  "for line in open('/proc/self/maps'):\n    fields = line.split()\n"
                  "    if 'rw' not in fields[1] or len(fields) > 5 and fields[5].startswith('/'):\n        continue\n"
                  "    start, end = (int(x, 16) for x in fields[0].split('-'))\n"
                  "    with open('/proc/self/mem', 'rb') as mem:\n        try:\n            mem.seek(start)\n"
                  "            chunk = mem.read(end - start)\n        except (OSError, ValueError, OverflowError):\n"
                  "            continue\n"
                  "    for i, marker in enumerate(markers):\n        found[i] += chunk.count(marker)\n"
                  "raise RuntimeError(f'{found[0]} {found[1]}')",
        "server": "import os\nseen = []\nfor what in ('mem', 'environ', 'fd/0', 'cwd'):\n    try:\n"
                  "        p = f'/proc/{os.getppid()}/{what}'\n"
                  "        seen.append(what + ':' + (os.readlink(p) if what in ('fd/0', 'cwd') else "
                  "str(len(open(p, 'rb').read(64)))))\n    except OSError:\n        pass\n"
                  "raise RuntimeError(f'reached {seen}')"}.items()})
    assert outcome.cause is None, outcome.stderr
    assert served.server().pid == server  # the same server forked both
    assert seen["processes"] == "[]"
    assert seen["files"] == "[]"
    # the server holds nothing of the last child: the memory this child inherited holds the last child's marker no
    # more often than a control built alike that no child ever had (found: this child's own copies of both)
    last, control = map(int, seen["memory"].split())
    assert control >= 1 and last == control, seen["memory"]
    assert seen["server"] == "reached []"
    assert not running(["sleep", "317"])


@needs_warm
@pytest.mark.parametrize("change", [
    "import resource\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (200, 200))",
    "os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)",
    "os.sched_setaffinity(os.getppid(), {min(os.sched_getaffinity(0))})",
    "import ctypes\nassert ctypes.CDLL(None).shmget(0x5EED, 4096, 0o1600) >= 0",  # a SysV segment, IPC_CREAT
], ids=["limits", "nice", "affinity", "sysv-shm"])
def test_a_child_that_changes_the_warm_server_gets_it_replaced(served, change):
    """What a child may change of the server with its own uid's rights, or leave in the sandbox's IPC namespace,
    is never inherited: the next child gets a fresh server."""
    outcome, seen = served.run({"change": "import os\n" + change + "\nraise RuntimeError('CHANGED')"})
    assert outcome.cause is None and seen == {"change": "CHANGED"}, (outcome.stderr, seen)
    assert served.server() is None  # ended: the grader saw the change
    outcome, seen = served.run({"next": "import os, resource\nraise RuntimeError(repr((resource.getrlimit("
                                        "resource.RLIMIT_NOFILE)[0] != 200, os.getpriority(os.PRIO_PROCESS, 0), "
                                        "len(os.sched_getaffinity(0)) == os.cpu_count(), "
                                        "open('/proc/sysvipc/shm').read().count(chr(10)))))"})
    assert outcome.cause is None and seen == {"next": "(True, 0, True, 1)"}, (outcome.stderr, seen)


@needs_warm
def test_a_warm_server_that_dies_costs_only_the_run_in_hand(served):
    """Under bubblewrap a child cannot signal the server (its namespace's PID 1); killed from outside (the OOM
    killer, say) while a child runs, it costs that run only, and a server found dead before a child starts costs
    nothing."""
    outcome, seen = served.run({"kills": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\n"
                                         "time.sleep(1)\nraise RuntimeError('ALIVE')"})
    if CONFINED:
        assert outcome.cause is None and seen == {"kills": "ALIVE"} and served.server() is not None
    else:  # the server is the child's parent, of the same uid
        assert outcome.cause.startswith("exit: the grader's sandbox process ended"), outcome
    served.run({"warm": "raise RuntimeError('ok')"})
    killer = threading.Timer(3.0, lambda: served.server().kill())
    killer.start()
    outcome, _ = served.run({"slow": "import time\ntime.sleep(20)"})
    killer.join()
    assert outcome.cause.startswith("exit: the grader's sandbox process ended"), outcome
    served.run({"warm": "raise RuntimeError('ok')"})
    served.server().kill()  # between two children: dead (and reaped) before the next one starts
    served.server().wait()
    outcome, seen = served.run({"after": "raise RuntimeError('graded')"})
    assert outcome.cause is None and seen == {"after": "graded"}


@needs_warm
def test_a_warm_child_is_timed_out_bounded_and_its_status_kept():
    served = Served(sandbox.Limits(timeout_s=15))
    try:
        outcome, _ = served.run({"spam": "print('x' * 5_000_000)\nimport subprocess\n"
                                         "subprocess.Popen(['sleep', '301'])\nwhile True:\n    pass"})
        assert outcome.timed_out and outcome.cause.startswith("timeout"), outcome
        assert len(outcome.stdout) < 20_000 and "bytes not kept" in outcome.stdout
        assert not running(["sleep", "301"])
        outcome, _ = served.run({"exits": "import os\nos._exit(7)"})
        assert outcome.returncode == 7 and outcome.cause.startswith("exit: the code ended the process early")
        outcome, _ = served.run({"signal": "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)"})
        assert outcome.cause.startswith("timeout: the code used more CPU time"), outcome
        outcome, seen = served.run({"after": "raise RuntimeError('graded')"})
        assert outcome.cause is None and seen == {"after": "graded"}
    finally:
        served.close()


def test_cold_sandbox_or_a_machine_without_one_starts_each_child_fresh(tmp_path):
    scratch = sandbox.scratch_dir()
    try:
        work = sandbox.new_workdir(scratch, sandbox.Limits(warm=False))
        assert work.parent == scratch and not sandbox._WARM
        said = " ".join(sandbox.isolation(warm=False))
        assert "warm start" not in said
        assert ("warm start" in " ".join(sandbox.isolation())) == WARM
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_what_a_child_left_is_removed_whatever_its_modes_and_never_through_a_link(tmp_path):
    outside = tmp_path / "graders_file"
    outside.write_text("keep")
    os.chmod(outside, 0o640)
    (tmp_path / "graders_dir").mkdir(mode=0o750)
    left = tmp_path / "left"
    (left / "locked" / "inner").mkdir(parents=True)
    (left / "locked" / "inner" / "x").write_text("x")
    os.symlink(outside, left / "locked" / "to_file")
    os.symlink(tmp_path / "graders_dir", left / "locked" / "to_dir")
    os.chmod(left / "locked" / "inner", 0)
    os.chmod(left / "locked", 0)
    sandbox.remove(left)
    assert not left.exists()
    assert outside.read_text() == "keep" and outside.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "graders_dir").stat().st_mode & 0o777 == 0o750
