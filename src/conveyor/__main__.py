"""``python -m conveyor`` runs the command line."""

from .cli import main

main()
