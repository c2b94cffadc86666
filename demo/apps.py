from django.apps import AppConfig


class DemoConfig(AppConfig):
    """No models: an app only so that Django finds the seed_demo command."""

    name = "demo"
