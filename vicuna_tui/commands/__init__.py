"""The command-line subcommands.  None of them imports torch unless it loads a model."""
