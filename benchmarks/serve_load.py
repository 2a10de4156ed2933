"""Load test of a registered convforge model behind `mlflow models serve` (loopback only).

Sets up a throw-away registry (SQLite in a temp folder), exports LeNet-5 for
Fashion-MNIST, registers it with ``convforge``'s registry code (the export as
a strict pyfunc model, alias ``champion``), starts ``mlflow models serve -m
models:/bench@champion`` on 127.0.0.1 and drives it with N = 1, 4, 16
concurrent clients, each sending one real test image per request for a fixed
time (bounded by count as well). Reports p50/p99 latency, throughput and the
error rate per N; then sends every kind of malformed payload and checks each
gets a 4xx answer while the server keeps answering good requests.

    .venv/bin/python benchmarks/serve_load.py [--seconds 8] [--max-requests 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = (1, 4, 16)
STARTUP_TIMEOUT_S = 300


def post(url: str, body: bytes, content_type: str = "application/json", timeout: float = 30) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # connection refused/reset: counted as an error


def register_model(tmp: Path) -> str:
    """Export an (untrained-size, real-shape) LeNet-5 and register it; returns the tracking URI."""
    import mlflow

    import models
    from pipelines.catalog import load_arrays
    from pipelines.decode import decode_image
    from serving.export import export_classifier
    from tasks.core.model_registry import register_export

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    model = models.build("lenet5", (28, 28, 1), 10)
    export = export_classifier(model, tmp / "exports", "bench", load_arrays("fashion_mnist").class_names, decode=decode_image)
    with mlflow.start_run() as run:
        pass
    register_export(run.info.run_id, export, "bench", alias="champion")
    return uri


def start_server(uri: str, port: int, log: Path) -> subprocess.Popen:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([f"{bin_dir}/mlflow", "models", "serve", "-m", "models:/bench@champion", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + STARTUP_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=3):
                return proc
        except OSError:
            time.sleep(1)
    raise RuntimeError("mlflow models serve did not start in time")


def load_level(url: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop_at:
            with lock:
                if len(latencies) + errors[0] >= max_requests:
                    return
            start = time.perf_counter()
            status = post(url, bodies[i % len(bodies)])
            took = time.perf_counter() - start
            with lock:
                if status == 200:
                    latencies.append(took)
                else:
                    errors[0] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    total = len(latencies) + errors[0]
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    return {"requests": total, "p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99),
            "throughput": len(latencies) / wall, "error_rate": errors[0] / max(total, 1)}


def malformed(images: np.ndarray) -> dict[str, tuple[bytes, str]]:
    def as_json(x):
        return json.dumps({"inputs": x}).encode()

    return {
        "float pixels": (as_json((images / 255.0).tolist()), "application/json"),
        "strings": (as_json([[["a"]]]), "application/json"),
        "values > 255": (as_json((images.astype(int) + 300).tolist()), "application/json"),
        "wrong shape": (as_json(images[..., 0].tolist()), "application/json"),
        "garbage bytes": (os.urandom(4096), "application/json"),
        "oversized 1100x1100": (as_json(np.zeros((1, 1100, 1100, 1), np.uint8).tolist()), "application/json"),
        "wrong content type": (b"hello", "text/plain"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per client count (default 8)")
    parser.add_argument("--max-requests", type=int, default=4000, help="request cap per client count (default 4000)")
    args = parser.parse_args()
    from pipelines.catalog import load_arrays

    images = load_arrays("fashion_mnist").x_test[:64]
    bodies = [json.dumps({"inputs": images[i : i + 1].tolist()}).encode() for i in range(len(images))]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/invocations"
    with tempfile.TemporaryDirectory() as tmp:
        uri = register_model(Path(tmp))
        proc = start_server(uri, port, Path(tmp) / "serve.log")
        try:
            post(url, bodies[0])  # warm-up: first call traces the graph
            levels = [(n, load_level(url, bodies, n, args.seconds, args.max_requests)) for n in CLIENTS]
            bad = {}
            for label, (body, ctype) in malformed(images[:2]).items():
                start = time.perf_counter()
                status = post(url, body, ctype, timeout=120)
                bad[label] = (status, f"{1000 * (time.perf_counter() - start):.0f}", f"{len(body) / 1e6:.2f}", post(url, bodies[0]))
            alive = proc.poll() is None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    rows = [[n, r["requests"], f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['throughput']:.1f}", f"{100 * r['error_rate']:.2f}%"]
            for n, r in levels]
    body = table(["clients", "requests", "p50 ms", "p99 ms", "requests/s", "errors"], rows)
    body += ("\n\nOne 28x28 Fashion-MNIST test image per request (JSON `{\"inputs\": ...}`), `mlflow models serve "
             "--env-manager local` with its default single worker, LeNet-5 export behind convforge's strict pyfunc; "
             f"each level runs {args.seconds:g} s or {args.max_requests} requests. Clients and server share the machine.\n\n")
    body += table(["malformed payload", "status", "answered in ms", "body MB", "next good request"], [[k, *v] for k, v in bad.items()])
    body += f"\n\nServer still running after the malformed payloads: {'yes' if alive else 'NO'}."
    body += f"\n\nLoad average (1 min) when the run ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    write_section("serve_load", "Serving under load (mlflow models serve, loopback)",
                  f".venv/bin/python benchmarks/serve_load.py --seconds {args.seconds:g} --max-requests {args.max_requests}", body)


if __name__ == "__main__":
    main()
