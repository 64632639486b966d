"""The command line (`songgen`): each command is option parsing and one library call; this
folder also holds how a command exits (one-line errors, exit codes, Ctrl-C), the shared options
and what commands print."""


def __getattr__(name):
    # `songgen.cli:cli`, the console script's entry point in installations made before the
    # commands moved into this folder, still finds the group (imported only when asked for).
    if name == "cli":
        from .commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
