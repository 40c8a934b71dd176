"""Training our own weights: datasets rendered from meshes we may train on, losses, the loop."""
