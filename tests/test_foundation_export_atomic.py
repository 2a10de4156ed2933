"""Exports are atomic: an interrupted or killed export leaves no partial version folder."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from serving.versions import latest_version, versions, write_version


def test_interrupted_writer_leaves_no_version(tmp_path):
    write_version(tmp_path, "m", lambda p: (p.mkdir(), (p / "saved_model.pb").write_text("v1")))

    def half_written(path):
        path.mkdir()
        (path / "saved_model.pb").write_text("partial")
        raise KeyboardInterrupt  # the user presses Ctrl-C mid-export

    with pytest.raises(KeyboardInterrupt):
        write_version(tmp_path, "m", half_written)
    assert versions(tmp_path / "m") == [1]
    assert latest_version(tmp_path / "m").joinpath("saved_model.pb").read_text() == "v1"
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "m").iterdir())


def test_kill_9_midway_leaves_no_version(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from serving.versions import write_version
        def slow(path):
            path.mkdir()
            (path / "saved_model.pb").write_text("partial")
            print("writing", flush=True)
            time.sleep(60)
        write_version({str(tmp_path)!r}, "m", slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert versions(tmp_path / "m") == []
    path = write_version(tmp_path, "m", lambda p: (p.mkdir(), (p / "saved_model.pb").write_text("ok")))
    assert path.name == "1"


def test_concurrent_writers_get_distinct_versions(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from serving.versions import write_version
        for i in range(5):
            write_version({str(tmp_path)!r}, "m", lambda p: (p.mkdir(), (p / "saved_model.pb").write_text(sys.argv[1])))
    """)
    root = os.path.dirname(os.path.dirname(__file__))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], cwd=root) for k in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    assert versions(tmp_path / "m") == list(range(1, 16))
