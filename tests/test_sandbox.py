"""The sandbox's promises, observed from inside the child: what it can reach by every route, who it runs as, what
it sees, what it leaves behind. Each probe reports what it saw in its exception message, which the child records
as a note; "blocked" means the route failed inside the child."""
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from autograder import sandbox
from autograder.assignments import ROOT

CONFINED = bool(sandbox.jail().bwrap)
needs_bwrap = pytest.mark.skipif(not CONFINED and os.environ.get("CI") != "true",
                                 reason="bubblewrap is not installed here (CI installs it): the child is not confined")


def probe(code_by_name: dict, limits=sandbox.Limits(timeout_s=90)):
    """{name: what the probe saw} from one child that runs each probe's code in a class body."""
    chunks = [{"label": name, "code": "class Probe:\n" + "\n".join("    " + line for line in code.splitlines())}
              for name, code in code_by_name.items()]
    work = sandbox.scratch_dir() / "work"
    try:
        outcome = sandbox.run_export({"chunks": chunks, "models": []}, work, limits)
        assert outcome.cause is None, outcome.stderr
        notes = json.loads((work / "definitions.json").read_text())["notes"]
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    return {note.split(",", 1)[0]: note.split(": ", 2)[-1] for note in notes}


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


def test_the_child_never_sees_the_graders_environment(secrets):
    seen = probe({"env": "import os\nraise RuntimeError(','.join(sorted(os.environ)))"})
    assert set(seen["env"].split(",")) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
                                           "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LC_CTYPE", "TMPDIR", "PWD"}


@needs_bwrap
def test_the_child_reaches_nothing_of_the_grader_by_any_route(secrets):
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
    })
    leaked = {k: v for k, v in seen.items() if "SECRET" in v or "do-not-leak" in v or "def test_" in v
              or "ResidualBlock" in v or "Hidden checks" in v or "ref: refs" in v or v.startswith("READ imported")}
    assert not leaked
    # the child sees only its own namespace: itself and bubblewrap's init
    assert seen["processes"] in ("READ ['1', '2']", "READ ['1', '2', '3']"), seen["processes"]
    assert seen["parent_env"] == "READ " or "GRADER_SECRET_TOKEN" not in seen["parent_env"]


@needs_bwrap
def test_the_child_has_no_network_and_a_private_tmp(tmp_path):
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
        })
    finally:
        server.close()
    assert "CONNECTED" not in seen["network"]
    assert seen["leftovers"] == "WROTE"
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/dev/shm/{marker}")


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.child_interpreter() is None,
                    reason="privileges are dropped only when the grader runs as root with a reachable interpreter")
def test_as_root_the_child_is_an_unprivileged_uid_of_its_own(tmp_path):
    secret = tmp_path / "root_only"
    secret.write_text("SECRET")
    os.chmod(secret, 0o600)
    seen = probe({"uid": "import os\nraise RuntimeError(os.getuid())", "secret": reads(secret)})
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
