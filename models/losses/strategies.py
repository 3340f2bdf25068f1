"""Import every strategy module so each registers itself."""

from models.losses import dkd, feature, hard, scratch, soft  # noqa: F401
