"""Qt item models over the core's data: what the views show, kept apart from the views."""
