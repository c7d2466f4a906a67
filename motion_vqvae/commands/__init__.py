"""The commands a user runs daily; ``scripts/*.py`` and the console entry points call their ``main``."""
