"""Import every strategy module so each registers itself."""

from . import dkd, feature, hard, scratch, soft  # noqa: F401
