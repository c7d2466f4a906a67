"""PPO in token space on G1Kinematic-v0, optionally guided by a prior.

The command lives in motion_vqvae/commands/train_policy.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.train_policy import main

if __name__ == "__main__":
    run(main)
