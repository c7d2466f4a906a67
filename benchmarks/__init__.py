"""The project's measurements, kept out of the library's rooms: each module here trains, times or scores
something for ``scripts/benchmark.py`` and writes the JSON that ``benchmarks/tables.py`` turns into the
README's tables. Nothing in ``motion_vqvae`` or ``sim2real`` imports from here.
"""
