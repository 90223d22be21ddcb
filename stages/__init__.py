"""The pipeline's stages, one script each, run by DVC as python -m stages.<name>."""
