"""Ship a trained tracker with its card (see motion_vqvae/commands/release_tracker.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.release_tracker import main

if __name__ == "__main__":
    run(main)
