"""Robot-side runtime: numpy, onnxruntime and pyyaml only. Never imports torch or motion_vqvae."""
