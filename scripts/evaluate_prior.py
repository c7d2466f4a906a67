"""Evaluate a motion-token prior on held-out clips.

The command lives in motion_vqvae/commands/evaluate_prior.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.evaluate_prior import main

if __name__ == "__main__":
    run(main)
