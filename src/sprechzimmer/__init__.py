"""Sprechzimmer: end-to-end encrypted video calls for psychotherapy."""

__version__ = "0.1.0"
