"""Deterministic synthetic phantom with ground truth: anatomy, motion, ultrasound, fluoroscopy."""
