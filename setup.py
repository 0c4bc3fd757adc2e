"""Kept for tools that look for setup.py; the package is described in pyproject.toml."""
from setuptools import setup

setup()
