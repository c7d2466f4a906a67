"""Every command-line entry point's logic; ``scripts/*.py`` are shims and the ``mvq-*`` console scripts
call the same ``main`` (see ARCHITECTURE.md, checked by tests/test_entry_points.py)."""
