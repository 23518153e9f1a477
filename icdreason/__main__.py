"""`python -m icdreason` runs the command-line interface."""

from .cli import main

main()
