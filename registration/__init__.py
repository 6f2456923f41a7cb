"""Preoperative models and fluoro/ultrasound registration and their nodes (not yet built)."""
