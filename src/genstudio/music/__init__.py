"""Melody generation: Magenta-style melody encoding, the folk-tune training data and MusicVAE."""
