"""Evaluate a tokenizer checkpoint on whole clips (see motion_vqvae/commands/evaluate.py, or --help)."""

from motion_vqvae.cli import run
from motion_vqvae.commands.evaluate import main

if __name__ == "__main__":
    run(main)
