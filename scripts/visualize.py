"""Motion, reconstruction or episode as a GIF (see motion_vqvae/commands/visualize.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.visualize import main

if __name__ == "__main__":
    run(main)
