"""Free TCP ports on 127.0.0.1, for servers a test starts: the product's own helper."""

from mlstack.core.ports import free_port

__all__ = ["free_port"]
