"""social-monitor: accountable monitoring of social-media access on a trust's own devices."""

__version__ = "0.1.0"
