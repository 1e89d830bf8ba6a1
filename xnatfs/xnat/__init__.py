"""Synchronous access to XNAT's REST API (requests; no trio, no pyfuse3)."""

from xnatfs.xnat.bodies import DownloadInfo
from xnatfs.xnat.client import ClientStats, XnatClient

__all__ = ["ClientStats", "DownloadInfo", "XnatClient"]
