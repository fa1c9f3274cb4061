"""``python -m grutune`` runs the command line."""

from .cli import main

main()
