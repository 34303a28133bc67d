"""The command line: local run, commands against a deployed stack, stack lookup, views."""
