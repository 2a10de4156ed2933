"""Distributed preprocessing with the tf.data service (an existing engine, not ours).

A dispatcher hands out work; workers run the dataset's graph (reading,
decoding, augmentation) and stream elements to the trainer. Start them with
``convforge data-service dispatcher`` / ``convforge data-service worker`` on
any machines, then set the recipe option::

    data:
      service: {dispatcher: "grpc://10.0.0.5:5050", mode: distributed_epoch}

``mode``: ``parallel_epochs`` (every worker produces a full epoch: most
throughput, elements repeat across workers) or ``distributed_epoch`` (each
element once per epoch, split dynamically between workers). The pipeline sent
to the workers must be pure graph ops, which is why augmentation here avoids
``tf.numpy_function``. Element order across workers is not deterministic.

Note: the servers listen on all interfaces whatever host name you give; put
them on a private network. On a single machine the service is slower than a
local pipeline: it is for adding machines, not for one box.

Example:
    >>> dispatcher = start_dispatcher(port=5050)
    >>> workers = [start_worker("localhost:5050", port=p) for p in (5051, 5052)]
    >>> ds = distribute(train, "grpc://localhost:5050", mode="distributed_epoch")
"""

from __future__ import annotations

import tensorflow as tf

MODES = {"parallel_epochs": "parallel_epochs", "distributed_epoch": "distributed_epoch"}


def start_dispatcher(port: int = 0, work_dir: str | None = None) -> tf.data.experimental.service.DispatchServer:
    """Start a dispatcher (``port`` 0 picks a free one); its address is ``server.target``.
    ``work_dir`` makes it fault tolerant (its journal survives restarts)."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
    )
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(dispatcher: str, port: int = 0, host: str = "localhost") -> tf.data.experimental.service.WorkerServer:
    """Start a worker registered with ``dispatcher`` (``host:port``, with or without
    ``grpc://``); ``host`` is the name the trainer uses to reach this worker."""
    address = dispatcher.split("://", 1)[-1]
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=address, worker_address=f"{host}:%port%", port=port,
    )
    return tf.data.experimental.service.WorkerServer(config)


def check_options(options: dict) -> dict:
    """Validate a recipe's ``data.service`` mapping; ValueError naming the bad key."""
    known = {"dispatcher", "mode", "job_name"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} in data.service; known: {sorted(known)}")
    dispatcher = options.get("dispatcher")
    if not isinstance(dispatcher, str) or ":" not in dispatcher:
        raise ValueError(f"data.service.dispatcher must be an address like grpc://host:5050; received {dispatcher!r}")
    mode = options.get("mode", "parallel_epochs")
    if mode not in MODES:
        raise ValueError(f"data.service.mode must be one of {sorted(MODES)}; received {mode!r}")
    return {"dispatcher": dispatcher if "://" in dispatcher else f"grpc://{dispatcher}", "mode": mode,
            "job_name": options.get("job_name")}


def distribute(ds: tf.data.Dataset, dispatcher: str, mode: str = "parallel_epochs", job_name: str | None = None) -> tf.data.Dataset:
    """Run ``ds``'s preprocessing on the service's workers; the result streams from them."""
    options = check_options({"dispatcher": dispatcher, "mode": mode, "job_name": job_name})
    service = options["dispatcher"]
    return ds.apply(tf.data.experimental.service.distribute(
        processing_mode=MODES[options["mode"]], service=service, job_name=options["job_name"],
    ))
