"""The local web status page for the technician in the depot."""

from .app import create_status_blueprint, install_status_page
from .config import StatusSection
from .sources import StatusSources

__all__ = ["StatusSection", "StatusSources", "create_status_blueprint", "install_status_page"]
