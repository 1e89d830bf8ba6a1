"""xnatfs: an XNAT imaging archive as a read-only FUSE filesystem."""

__version__ = "0.1.0"
__all__ = ["__version__"]
