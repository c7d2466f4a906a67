"""Train a motion-token prior on a tokenizer's token streams.

The command lives in motion_vqvae/commands/train_prior.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.train_prior import main

if __name__ == "__main__":
    run(main)
