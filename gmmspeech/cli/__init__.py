"""The ``gmmspeech`` command line: thin modules that parse arguments and call the library.

``main`` holds the entry point and the parser; ``common`` the list of subcommands and the
options they share; every other module is one subcommand with ``EXAMPLE``,
``add_arguments(parser)`` and ``run(args) -> int``.

May import: anything in the package.
"""
