"""M-Sec edge appliance device agent."""

__version__ = "0.1.0"
