"""``convforge sync-runs [--workdir DIR]``: upload tracking calls queued during an MLflow outage.

While the tracking server is away, training keeps going and queues every
MLflow call (metrics, tags, artifacts, the model, the final status) in
``<workdir>/runs/<recipe-key>/pending-mlflow.jsonl``. This command replays
each queue into the runs it names (creating the runs opened while offline,
nested as they were) and removes it once every call went through. A replay
that fails half-way is continued by the next sync: only what was not sent is
sent, and no run is marked FAILED because of it (``tasks.core.tracking_sync``).
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("sync-runs", help="upload metrics/artifacts queued while the MLflow server was unreachable",
                       description="Replay every runs/*/pending-mlflow.jsonl under --workdir into its MLflow run "
                                   "(MLFLOW_TRACKING_URI or <workdir>/mlflow.db).")
    p.add_argument("--workdir", default=".", help="the folder training ran in (default: .)")
    p.set_defaults(func=run)


def pending_files(workdir: str | Path) -> list[Path]:
    """Every queue of tracking calls under ``workdir/runs``."""
    from tasks.core.tracking import PENDING_FILE

    return sorted((Path(workdir) / "runs").glob(f"*/{PENDING_FILE}"))


def run(args) -> int:
    import shutil

    from tasks.core import tracking
    from tasks.core.errors import UserError
    from tasks.core.tracking_sync import pending_run_ids, replay_pending

    uri = tracking.configure(args.workdir)
    files = pending_files(args.workdir)
    if not files:
        print(f"nothing to sync under {Path(args.workdir) / 'runs'}")
        return 0
    tracking.check_reachable(uri)
    failures = 0
    for path in files:
        try:
            run_ids = pending_run_ids(path)
        except ValueError as err:  # a damaged queue file (JSON decode error)
            raise UserError(f"{path} is damaged ({err}); fix or remove that line and rerun") from None
        try:
            sent, runs = replay_pending(path)
        except Exception as err:  # noqa: BLE001 - the server may be away again: keep the queue
            print(f"could not sync {path} ({', '.join(run_ids)}) at {uri} ({type(err).__name__}: {str(err)[:160]}); "
                  "what was sent is recorded, rerun later to send the rest")
            failures += 1
            continue
        print(f"synced {sent} call(s) from {path} into run(s) {', '.join(runs) or 'none'}")
        if not any(path.parent.glob("backup")) and not (path.parent / "mlflow_run_id").exists():
            shutil.rmtree(path.parent, ignore_errors=True)  # a finished run's state: nothing else to keep
    return 1 if failures else 0
