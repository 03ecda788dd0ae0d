"""The sandbox's promises, observed from inside the child: who it runs as, what it can reach, what it sees."""
import glob
import json
import os

import pytest

from autograder import sandbox

PROBES = {  # name: code whose exception message reports what the child saw
    "uid": "import os\nraise RuntimeError(os.getuid())",
    "env": "import os\nraise RuntimeError(','.join(sorted(os.environ)))",
    "secret": "raise RuntimeError(open({secret!r}).read())",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)",
}


def probe(tmp_path, monkeypatch):
    secret = tmp_path / "hidden_checks.py"
    secret.write_text("the answer")
    os.chmod(secret, 0o600)
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "do-not-leak")
    chunks = [{"label": name, "code": f"class Probe:\n" + "\n".join("    " + line for line in
                                                                    code.format(secret=str(secret)).splitlines())}
              for name, code in PROBES.items()]
    work = sandbox.scratch_dir() / "work"
    outcome = sandbox.run_export({"chunks": chunks, "models": []}, work, sandbox.Limits(timeout_s=60), slot=7)
    assert outcome.cause is None, outcome.stderr
    notes = json.loads((work / "definitions.json").read_text())["notes"]
    return {note.split(",", 1)[0]: note.split(": ", 2)[-1] for note in notes}


def test_the_child_never_sees_the_graders_environment(tmp_path, monkeypatch):
    seen = probe(tmp_path, monkeypatch)
    assert set(seen["env"].split(",")) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
                                           "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "LC_CTYPE"}


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.child_interpreter() is None,
                    reason="privileges are dropped only when the grader runs as root with a reachable interpreter")
def test_as_root_the_child_is_an_unprivileged_uid_without_network(tmp_path, monkeypatch):
    seen = probe(tmp_path, monkeypatch)
    assert seen["uid"] == str(sandbox.CHILD_UID_BASE + 7)
    assert seen["secret"].startswith("[Errno 13] Permission denied")
    if sandbox.network_can_be_cut():
        assert "Network is unreachable" in seen["network"]
    assert "own unprivileged uid" in sandbox.isolation()


def test_output_is_bounded_and_the_group_is_killed_on_timeout(tmp_path):
    chunks = [{"label": "spam", "code": "class Spam:\n    print('x' * 5_000_000)\n    import subprocess\n"
                                        "    subprocess.Popen(['sleep', '300'])\n    while True:\n        pass\n"}]
    outcome = sandbox.run_export({"chunks": chunks, "models": []}, sandbox.scratch_dir() / "work",
                                 sandbox.Limits(timeout_s=20))
    assert outcome.timed_out and outcome.cause.startswith("timeout")
    assert len(outcome.stdout) < 20_000 and "bytes not kept" in outcome.stdout
    assert not running(["sleep", "300"])  # the grandchild went with the group


def running(argv):
    """Whether a process with exactly this argv is alive."""
    wanted = "\0".join(argv).encode() + b"\0"
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                if f.read() == wanted:
                    return True
        except OSError:
            pass
    return False
