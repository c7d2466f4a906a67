"""Sample motion from a prior and write it as a CSV.

The command lives in motion_vqvae/commands/sample_prior.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.sample_prior import main

if __name__ == "__main__":
    run(main)
