"""``convforge sync-runs [--workdir DIR]``: upload tracking calls queued during an MLflow outage.

While the tracking server is away, training keeps going and queues every
MLflow call (metrics, tags, artifacts, the model, the final status) in
``<workdir>/runs/<recipe-key>/pending-mlflow.jsonl``. This command replays
each queue into the run it belongs to and removes it once every call went
through; a queue that fails again stays for the next try.
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

    uri = tracking.configure(args.workdir)
    files = pending_files(args.workdir)
    if not files:
        print(f"nothing to sync under {Path(args.workdir) / 'runs'}")
        return 0
    failures = 0
    for path in files:
        try:
            run_ids = tracking.pending_run_ids(path)
        except ValueError as err:  # a damaged queue file (JSON decode error)
            raise UserError(f"{path} is damaged ({err}); fix or remove that line and rerun") from None
        if len(run_ids) != 1:
            print(f"skipped {path}: it names {len(run_ids)} runs ({', '.join(run_ids) or 'none'}); expected one")
            failures += 1
            continue
        try:
            sent = tracking.replay_pending(path, run_ids[0])
        except Exception as err:  # noqa: BLE001 - the server may be away again: keep the queue
            print(f"could not sync {path} to run {run_ids[0]} at {uri} ({type(err).__name__}: {str(err)[:160]}); "
                  "the queue is kept, rerun later")
            failures += 1
            continue
        print(f"synced {sent} call(s) from {path} into run {run_ids[0]}")
        if not any(path.parent.glob("backup")) and not (path.parent / "mlflow_run_id").exists():
            shutil.rmtree(path.parent, ignore_errors=True)  # a finished run's state: nothing else to keep
    return 1 if failures else 0
