"""The command line (`songgen`): each command is option parsing and one library call; this
folder also holds how a command exits (one-line errors, exit codes, Ctrl-C), the shared options
and what commands print."""
