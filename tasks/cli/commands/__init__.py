"""One module per ``convforge`` subcommand; each defines ``add_parser(subparsers)``."""
