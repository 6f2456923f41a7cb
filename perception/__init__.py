"""Segmentation and deformation-tracking networks and their nodes (not yet built)."""
