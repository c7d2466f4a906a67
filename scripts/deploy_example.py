"""Deployment example: an export drives the MuJoCo G1 with 500 Hz PD commands.

The command lives in motion_vqvae/commands/deploy_example.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.deploy_example import main

if __name__ == "__main__":
    run(main)
