"""The ``synthaug`` subcommands, one module per group; ``synthaug.cli`` joins them into one click group."""
