"""VQ-VAE network: Conv1d encoder/decoder, quantizers behind one interface, the model wrapper, losses."""

from motion_vqvae.models.encdec import Decoder, Encoder, PaddedConv1d
from motion_vqvae.models.losses import LOSS_KINDS, reconstruction_loss, velocity_loss
from motion_vqvae.models.quantizers import (
    QUANTIZERS,
    Quantizer,
    QuantizerOutput,
    VectorQuantizer,
    build_quantizer,
)
from motion_vqvae.models.vqvae import VQVAE

__all__ = [
    "LOSS_KINDS",
    "QUANTIZERS",
    "VQVAE",
    "Decoder",
    "Encoder",
    "PaddedConv1d",
    "Quantizer",
    "QuantizerOutput",
    "VectorQuantizer",
    "build_quantizer",
    "reconstruction_loss",
    "velocity_loss",
]
