"""The operator's provisioning tool for M-Sec devices (runs on the operator's machine, talks to the device
only through its shell over SSH). See docs/provisioning.md."""

__version__ = "0.1.0"
