"""``python -m grutune`` runs the command line."""

from grutune.cli import main

main()
