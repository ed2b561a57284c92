"""The training image's built-in job, a script (random_forest.py) run as a user's script is."""
