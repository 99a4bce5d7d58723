"""Small reusable widgets: the banner, the state badge, a form field that shows its problem."""
