"""Export a checkpoint for the robot: ONNX files, codebook and a hash-checked manifest.

The command lives in motion_vqvae/commands/export_onnx.py; ``--help`` lists its flags.
"""

from motion_vqvae.cli import run
from motion_vqvae.commands.export_onnx import main

if __name__ == "__main__":
    run(main)
