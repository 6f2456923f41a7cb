"""OpenIGTLink output, 2D overlay and 3D scene nodes (not yet built)."""
