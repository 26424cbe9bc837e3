"""``python -m mailtrap`` runs the command line."""

from mailtrap.cli import main

main()
