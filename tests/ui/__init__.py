"""Tests of the PySide6 app with pytest-qt on the offscreen platform."""
