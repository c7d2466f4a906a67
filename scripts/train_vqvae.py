"""Train a VQ-VAE motion tokenizer (see motion_vqvae/commands/train.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.train import main

if __name__ == "__main__":
    run(main)
