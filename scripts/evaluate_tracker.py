"""Score a physics tracker on clips (see motion_vqvae/commands/evaluate_tracker.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.evaluate_tracker import main

if __name__ == "__main__":
    run(main)
