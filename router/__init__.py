"""payrouter: one payment endpoint in front of many acquirers."""

__version__ = "0.1.0"
