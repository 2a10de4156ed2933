"""The ``convforge`` command line: ``main`` builds the parser, ``commands/`` adds one subcommand per module."""
