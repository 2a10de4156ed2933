"""Team scale on loopback: PostgreSQL-backed MLflow server, model registry, `mlflow models serve`.

Where the servers come from (nothing is mocked, nothing is skipped):

- CI (`.ci/run`) starts a PostgreSQL cluster and `mlflow/server.sh` and sets
  ``CONVFORGE_TEST_MLFLOW_URI`` and ``CONVFORGE_TEST_PG_URI``; these tests use
  them and FAIL if the server does not answer.
- Without those variables the module starts its own: ``initdb`` in a temporary
  folder (as the ``postgres`` user when run as root, since PostgreSQL refuses
  to run as root), ``postgres`` on a free 127.0.0.1 port,
  ``mlflow/create_database.sh`` and ``mlflow/server.sh``. A machine without
  PostgreSQL fails with the fix (``apt-get install postgresql``).

The same training code runs against the server with only MLFLOW_TRACKING_URI
changed; the run lands in PostgreSQL (checked with SQL), its export is
registered and loaded back by alias, and `mlflow models serve` answers real
HTTP requests with the export's predictions and refuses bad payloads with 4xx
while it keeps serving.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import mlflow
import numpy as np
import psycopg2
import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays
from serving.loader import load_export, predict_arrays
from tasks.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None, seconds: float, log: Path | None = None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{url} server exited ({proc.returncode}): {log.read_text()[-2000:] if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(1)
    pytest.fail(f"{url} did not answer within {seconds:.0f} s: {log.read_text()[-2000:] if log else ''}")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """Stop a server started in its own session, with every process of that session."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their parent
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed; install it (Debian: apt-get install postgresql) "
                    "or run .ci/run, which starts the test servers")
    return found


def start_postgres(tmp: Path):
    """A throw-away cluster on 127.0.0.1:<free port>; returns (process, port)."""
    user = None
    data = Path(tempfile.mkdtemp(prefix="convforge-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = "postgres"
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            pytest.fail("running as root needs the 'postgres' system user (apt-get install postgresql)")
        os.chown(data, entry.pw_uid, entry.pw_gid)
    subprocess.run([pg_binary("initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   user=user, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(tmp / "postgres.log", "w")
    proc = subprocess.Popen([pg_binary("postgres"), "-D", str(data / "db"), "-c", "listen_addresses=127.0.0.1",
                             "-p", str(port), "-k", str(data)], user=user, stdout=log, stderr=log, start_new_session=True)
    for _ in range(120):
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
            return proc, port, data
        except psycopg2.OperationalError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    pytest.fail(f"PostgreSQL did not start: {(tmp / 'postgres.log').read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(tracking URI, PostgreSQL URI) of a running PostgreSQL-backed MLflow server."""
    if os.environ.get("CONVFORGE_TEST_MLFLOW_URI"):
        uri, pg_uri = os.environ["CONVFORGE_TEST_MLFLOW_URI"], os.environ.get("CONVFORGE_TEST_PG_URI", "")
        assert pg_uri, "CONVFORGE_TEST_PG_URI must be set with CONVFORGE_TEST_MLFLOW_URI"
        wait_http(f"{uri}/health", None, 60)
        yield uri, pg_uri
        return
    tmp = tmp_path_factory.mktemp("team")
    pg, pg_port, pg_data = start_postgres(tmp)
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(pg_port), PGUSER="postgres", PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    subprocess.run(["bash", str(ROOT / "mlflow/create_database.sh"), "mlflow", "mlflow", "mlflow"], env=env,
                   check=True, capture_output=True, timeout=60)
    pg_uri = f"postgresql://mlflow:mlflow@127.0.0.1:{pg_port}/mlflow"
    port = free_port()
    env.update(MLFLOW_BACKEND_STORE_URI=pg_uri.replace("postgresql://", "postgresql+psycopg2://"),
               MLFLOW_ARTIFACTS_DIR=str(tmp / "artifacts"), MLFLOW_PORT=str(port))
    log = tmp / "mlflow-server.log"
    proc = subprocess.Popen(["bash", str(ROOT / "mlflow/server.sh")], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, 240, log)
        yield f"http://127.0.0.1:{port}", pg_uri
    finally:
        stop(proc)
        stop(pg, signal.SIGINT)  # fast shutdown
        shutil.rmtree(pg_data, ignore_errors=True)


@pytest.fixture(scope="module")
def registered(server, tmp_path_factory):
    """Train through the CLI against the server, export, register with alias ``champion``."""
    uri, _ = server
    work = tmp_path_factory.mktemp("work")
    name = f"fashion_{uuid.uuid4().hex[:8]}"  # the CI database outlives test runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(work)
        assert main(["train", "fashion_mnist_lenet5", "--set", "data.train_limit=256", "--set", "train.epochs=1",
                     "--set", "data.augment=[]", "--set", "export.enabled=false", "--set", f"mlflow.experiment={name}"]) == 0
        mlflow.set_tracking_uri(uri)
        run = mlflow.search_runs(experiment_names=[name], output_format="list")[0]
        assert main(["export", run.info.run_id, "--dir", str(work / "exports"), "--name", name,
                     "--register", name, "--alias", "champion"]) == 0
    images = load_arrays("fashion_mnist").x_test[:8]
    export = work / "exports" / name / "1"
    yield {"uri": uri, "run_id": run.info.run_id, "name": name, "export": export, "work": work, "images": images,
           "expected": predict_arrays(load_export(export), images)}
    mlflow.set_tracking_uri(None)


def test_run_is_tracked_in_postgres_with_proxied_artifacts(server, registered):
    _, pg_uri = server
    client = mlflow.MlflowClient(registered["uri"])
    run = client.get_run(registered["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "lenet5" and run.data.params["data.train_limit"] == "256"
    assert "val_accuracy" in run.data.metrics and "test_accuracy" in run.data.metrics
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # clients go through the server
    assert {"recipe.yaml", "inputs.json", "figures"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    version = client.get_model_version_by_alias(registered["name"], "champion")
    assert (version.version, version.run_id) == ("1", registered["run_id"])
    with psycopg2.connect(pg_uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (registered["run_id"],))
        assert cur.fetchone() == ("FINISHED",)
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (registered["name"],))
        assert cur.fetchall() == [("champion", 1)]


def test_registered_model_loads_back_by_alias(registered, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{registered['name']}@champion")
    out = model.predict(registered["images"])
    np.testing.assert_array_equal(out["class_id"], registered["expected"]["class_id"])
    np.testing.assert_array_equal(out["probabilities"], registered["expected"]["probabilities"])

    png = tmp_path / "item.png"
    png.write_bytes(tf.io.encode_png(registered["images"][0]).numpy())
    capsys.readouterr()
    assert main(["predict", str(registered["export"]), str(png)]) == 0
    from_export = capsys.readouterr().out
    assert main(["predict", f"models:/{registered['name']}@champion", str(png)]) == 0
    assert capsys.readouterr().out == from_export
    assert main(["predict", f"models:/{registered['name']}@nobody", str(png)]) == 2
    assert "not in the model registry" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(registered, tmp_path_factory):
    """`mlflow models serve` of models:/NAME@champion on a free 127.0.0.1 port."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = dict(os.environ, MLFLOW_TRACKING_URI=registered["uri"], PATH=f"{VENV_BIN}:{os.environ['PATH']}",
               PYTHONPATH=str(ROOT), TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    proc = subprocess.Popen([f"{VENV_BIN}/mlflow", "models", "serve", "-m", f"models:/{registered['name']}@champion",
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", proc, 240, log)
        yield f"http://127.0.0.1:{port}/invocations", proc
    finally:
        stop(proc)


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_served_model_answers_with_the_exports_predictions(served, registered):
    url, _ = served
    for key in ("inputs", "instances"):
        status, body = post(url, json.dumps({key: registered["images"].tolist()}).encode())
        assert status == 200, body[:500]
        pred = json.loads(body)["predictions"]
        np.testing.assert_array_equal(pred["class_id"], registered["expected"]["class_id"])
        np.testing.assert_allclose(pred["probabilities"], registered["expected"]["probabilities"], rtol=1e-6)


def bad_payloads(images: np.ndarray) -> dict[str, tuple[bytes, str]]:
    as_json = lambda x: json.dumps({"inputs": x}).encode()  # noqa: E731
    return {
        "float pixels (x / 255)": (as_json((images / 255.0).tolist()), "application/json"),
        "strings": (as_json([[["a"]]]), "application/json"),
        "values over 255": (as_json((images.astype(int) + 300).tolist()), "application/json"),
        "no channel axis": (as_json(images[..., 0].tolist()), "application/json"),
        "three channels": (as_json(np.repeat(images, 3, -1).tolist()), "application/json"),
        "garbage bytes": (os.urandom(512), "application/json"),
        "a PNG file as the body": (tf.io.encode_png(images[0]).numpy(), "application/json"),
        "oversized image 1100x1100": (as_json(np.zeros((1, 1100, 1100, 1), np.uint8).tolist()), "application/json"),
        "unsupported content type": (b"hello", "text/plain"),
    }


def test_bad_payloads_get_4xx_and_the_server_keeps_serving(served, registered):
    url, proc = served
    good = json.dumps({"inputs": registered["images"][:2].tolist()}).encode()
    for label, (body, content_type) in bad_payloads(registered["images"][:2]).items():
        status, answer = post(url, body, content_type)
        assert 400 <= status < 500, f"{label}: {status} {answer[:300]!r}"
        status, answer = post(url, good)
        assert status == 200, f"after {label}: {status} {answer[:300]!r}"
    assert proc.poll() is None
