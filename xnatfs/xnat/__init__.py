"""Synchronous access to XNAT's REST API (requests; no trio, no pyfuse3)."""

from xnatfs.xnat.client import ClientStats, DownloadInfo, XnatClient

__all__ = ["ClientStats", "DownloadInfo", "XnatClient"]
