"""Real `mlflow server` processes for the outage tests: start one on a free port, kill it, or kill it
from inside training after the first epoch."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import keras


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on 127.0.0.1 with a SQLite store and a file artifact root under ``tmp``."""
    port = port or free_port()
    log = (tmp / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
         "--default-artifact-root", (tmp / "artifacts").as_uri(), "--no-serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, (tmp / f"server-{port}.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, 9)
    raise AssertionError("mlflow server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 9)  # the server and its uvicorn worker
        proc.wait(timeout=30)


class KillServerAfterFirstEpoch(keras.callbacks.Callback):
    """Kills the tracking server when the first epoch ends; records every epoch's wall time."""

    server: subprocess.Popen | None = None
    seconds: list = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        KillServerAfterFirstEpoch.seconds.append(time.perf_counter() - self.start)
        if KillServerAfterFirstEpoch.server.poll() is None:
            stop_server(KillServerAfterFirstEpoch.server)
