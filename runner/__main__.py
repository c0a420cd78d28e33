"""`python -m runner` runs the `dp-runner` command line."""

from runner.cli import main

main()
