"""Preprocess motion files into a dataset cache (see motion_vqvae/commands/preprocess.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.preprocess import main

if __name__ == "__main__":
    run(main)
