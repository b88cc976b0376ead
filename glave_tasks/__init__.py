"""GLaVE batch annotation platform: tasks that run inside a stage pod."""

__version__ = "0.1.0"
