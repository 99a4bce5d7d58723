"""Dialogs for the decisions a person must make and the forms they fill in."""
