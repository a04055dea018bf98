"""A learned 2x upsampler for posters: the second stage of a cascade (a generator at half size, then this)."""
