"""``convforge data-service dispatcher|worker``: run tf.data service servers for remote augmentation."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "data-service", help="run a tf.data service dispatcher or worker",
        description="Run a tf.data service server until interrupted. Point a recipe at the dispatcher with "
                    "data.service: {dispatcher: grpc://HOST:PORT, mode: parallel_epochs|distributed_epoch}. "
                    "The servers listen on all interfaces: use a private network.",
    )
    roles = p.add_subparsers(dest="role", metavar="ROLE")
    roles.required = True
    d = roles.add_parser("dispatcher", help="start the dispatcher")
    d.add_argument("--port", type=int, default=5050, help="port to listen on (default 5050)")
    d.add_argument("--work-dir", default=None, help="journal folder: makes the dispatcher fault tolerant")
    d.set_defaults(func=run_dispatcher)
    w = roles.add_parser("worker", help="start a worker")
    w.add_argument("--dispatcher", required=True, help="dispatcher address HOST:PORT")
    w.add_argument("--port", type=int, default=5051, help="port to listen on (default 5051)")
    w.add_argument("--host", default="localhost", help="name the trainer uses to reach this worker")
    w.set_defaults(func=run_worker)


def _serve(server, what: str) -> int:
    print(f"{what}; Ctrl-C stops it", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        pass
    return 0


def run_dispatcher(args) -> int:
    from pipelines.data_service import start_dispatcher
    from tasks.core.errors import UserError

    try:
        server = start_dispatcher(args.port, args.work_dir)
    except Exception as err:  # the server raises framework errors (port in use, bad folder)
        raise UserError(f"cannot start the dispatcher on port {args.port}: {str(err).splitlines()[0]}") from None
    return _serve(server, f"dispatcher at {server.target}")


def run_worker(args) -> int:
    from pipelines.data_service import start_worker
    from tasks.core.errors import UserError

    try:
        server = start_worker(args.dispatcher, args.port, args.host)
    except Exception as err:
        raise UserError(f"cannot start a worker on port {args.port} for {args.dispatcher}: {str(err).splitlines()[0]}") from None
    return _serve(server, f"worker on port {args.port} serving dispatcher {args.dispatcher}")
