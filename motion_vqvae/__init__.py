"""motion-vqvae: VQ-VAE motion tokenizers for humanoid robots (training side, may import torch)."""

__version__ = "0.1.0"
