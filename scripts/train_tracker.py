"""Train a physics tracking controller (G1Track-v0, PPO) on reference clips (see
motion_vqvae/commands/train_tracker.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.train_tracker import main

if __name__ == "__main__":
    run(main)
