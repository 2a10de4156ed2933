"""Workflows built on Tasks and models that are not one training run: style transfer, fast style, ensembles, the demo, faces on photos."""
