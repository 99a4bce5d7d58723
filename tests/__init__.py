"""Workbench's tests, a package so that ``tests.support`` helpers import the same way everywhere."""
