"""``make prove``: break each promise on purpose in a copy of the repository and check its tests see it.

See ``prove/__main__.py`` for how it runs and ``prove/breaks.toml`` for the breaks.
"""
