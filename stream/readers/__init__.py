"""Readers for real-world frame files: video, DICOM cine, PLUS sequence files."""
