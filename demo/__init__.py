"""The top layer: the demo loader (`manage.py seed_demo`). It may use every app; none uses it."""
