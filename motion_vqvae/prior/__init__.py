"""A causal transformer prior over a tokenizer's token streams: training, scoring, sampling, export.

It consumes token streams and a :class:`sim2real.token_spec.TokenSpec`, and reaches the tokenizer only
through ``encode``/``decode`` (:class:`motion_vqvae.tokenizer.Tokenizer`).
"""
