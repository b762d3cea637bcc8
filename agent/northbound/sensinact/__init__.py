"""sensiNact-compatible REST facade (both generations) under /sensinact; see docs/rest.md."""

from .app import close_sensinact_app, create_sensinact_app, ensure_system_provider
from .config import RestSection

__all__ = ["RestSection", "close_sensinact_app", "create_sensinact_app", "ensure_system_provider"]
