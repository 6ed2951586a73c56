"""Audio URLs as policy sees them: which are URLs, how they are written down, which may be read.

Pure functions, no network: :mod:`worker.pipeline.fetch` resolves hosts and calls
:func:`check_addresses` with what the resolver said. The rules (docs/sources.md):

* a URL must start with one of the ``ASR_AUDIO_URLS`` prefixes, compared in
  canonical form (scheme and host lowercased, the port always written), so
  ``https://media.example.com/`` never matches ``https://media.example.com.evil.net/``;
* an http(s) host that resolves to an address that is not global (loopback,
  private, link-local like the cloud metadata address 169.254.169.254, shared,
  reserved) or is multicast is refused unless its exact ``scheme://host:port/``
  prefix is listed;
* the query string (a presigned URL's signature) is never written down:
  :func:`asr_protocol.redact.mask_url` replaces it in every log line, error and result.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote, urlsplit

from asr_protocol.redact import is_url, mask_url
from worker.pipeline.errors import InvalidPathError, PathNotAllowedError

__all__ = [
    "HTTP_SCHEMES",
    "SCHEMES",
    "STORE_SCHEMES",
    "canonical",
    "check_addresses",
    "check_allowed",
    "is_url",
    "mask_url",
    "origin",
    "parse_prefix",
    "split_bucket",
]

HTTP_SCHEMES = ("http", "https")
#: Object stores, named ``scheme://bucket/key``.
STORE_SCHEMES = ("s3", "gs", "az")
#: The URL schemes a job may name.
SCHEMES = (*STORE_SCHEMES, *HTTP_SCHEMES)
#: The optional package (``requirements-cloud.txt``) a worker needs for these schemes.
BACKENDS = {"gs": "gcsfs", "az": "adlfs"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split(url: str) -> SplitResult:
    """``url`` split, or :class:`InvalidPathError` naming it (masked) when it is not a usable URL."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidPathError(f"malformed URL: {mask_url(url)}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidPathError(
            f"unsupported URL scheme {scheme!r} in {mask_url(url)} (supported: {', '.join(SCHEMES)})"
        )
    _check_backend(scheme, url)
    if not parts.hostname:
        raise InvalidPathError(f"URL without a host (or bucket): {mask_url(url)}")
    if parts.username is not None or parts.password is not None:
        # Credentials come from the worker's environment, never from a message.
        raise InvalidPathError(f"URL must not carry credentials (user:password@): {mask_url(url)}")
    return parts


def _check_backend(scheme: str, url: str) -> None:
    if scheme in BACKENDS and not installed(BACKENDS[scheme]):
        raise InvalidPathError(
            f"{scheme}:// URLs need the {BACKENDS[scheme]} package on the workers "
            f"(pip install -r requirements-cloud.txt): {mask_url(url)}"
        )


@functools.cache
def installed(package: str) -> bool:
    """Whether ``package`` can be imported here (found, not imported: no SDK is loaded for a check)."""
    return importlib.util.find_spec(package) is not None


def split_bucket(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of an object store URL (``s3://``, ``gs://``, ``az://`` container)."""
    parts = urlsplit(url)
    return parts.netloc, unquote(parts.path.lstrip("/"))


def canonical(url: str) -> str:
    """``url`` in the form prefixes are compared in: lowercased scheme and host, explicit port.

    The query string is left out: a prefix never depends on a signature.

    Raises:
        InvalidPathError: not a URL of a supported scheme, or one that carries credentials.
    """
    parts = _split(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme in STORE_SCHEMES:
        return f"{scheme}://{host}{parts.path or '/'}"
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}:{parts.port or _DEFAULT_PORTS[scheme]}{parts.path or '/'}"


def origin(url: str) -> str:
    """The canonical ``scheme://host:port/`` of an http(s) URL."""
    scheme, _, rest = canonical(url).partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/"


def parse_prefix(entry: str) -> str:
    """One ``ASR_AUDIO_URLS`` entry in canonical form; a bare ``https://`` allows every such URL.

    Raises:
        InvalidPathError: the entry is not a URL prefix of a supported scheme.
    """
    entry = entry.strip()
    scheme = entry.partition("://")[0].lower()
    if entry.lower() == f"{scheme}://" and scheme in SCHEMES:
        _check_backend(scheme, entry)
        return f"{scheme}://"
    if "?" in entry or "#" in entry:
        raise InvalidPathError(f"a URL prefix cannot hold a query or fragment: {mask_url(entry)}")
    return canonical(entry)


def check_allowed(url: str, prefixes: Iterable[str]) -> str:
    """The canonical form of ``url`` if it starts with one of the (canonical) ``prefixes``.

    Raises:
        InvalidPathError: not a usable URL.
        PathNotAllowedError: URLs are off (no prefixes) or this one matches none.
    """
    prefixes = tuple(prefixes)
    form = canonical(url)
    if not prefixes:
        raise PathNotAllowedError(
            f"{mask_url(url)}: this worker reads no URLs (ASR_AUDIO_URLS is empty); give a file path"
        )
    if not any(form.startswith(prefix) for prefix in prefixes):
        raise PathNotAllowedError(f"{mask_url(url)} is not under any ASR_AUDIO_URLS prefix")
    return form


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Not global covers loopback, private, link-local, shared (CGNAT), reserved and unspecified.
    return not ip.is_global or ip.is_multicast


def check_addresses(url: str, addresses: Iterable[str], prefixes: Iterable[str]) -> None:
    """Refuse an http(s) ``url`` whose host resolved to an internal address, unless its origin is listed.

    Every address counts: a host with one public and one private address is refused.

    Raises:
        PathNotAllowedError: an internal address, and the exact ``scheme://host:port/`` is not listed.
    """
    internal = sorted({a for a in addresses if _internal(a)})
    if not internal or origin(url) in set(prefixes):
        return
    raise PathNotAllowedError(
        f"{mask_url(url)}: host {urlsplit(url).hostname} resolves to the internal address "
        f"{', '.join(internal)}; list the exact prefix {origin(url)} in ASR_AUDIO_URLS to allow it"
    )
