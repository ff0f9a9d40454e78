"""genstudio: a self-hosted studio for generative models (image, music, face swap)."""

__version__ = "0.1.0"
