"""Which proxy a request goes through, from the environment users already set.

``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` (either case) name the proxy; ``NO_PROXY`` exempts
hosts as curl, Go and requests read it, including CIDR blocks (``10.0.0.0/8``, as Kubernetes
sets it) and ``:port`` entries, which urllib's own matcher lacks.  Proxies may be ``http://`` or
``https://`` (TLS to the proxy itself); https registries are reached through them with CONNECT.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Optional

__all__ = ["proxy_for", "bypass_proxy", "redact_proxy"]


def proxy_for(scheme: str, host: str, port: int) -> Optional[urllib.parse.SplitResult]:
    """The proxy for a URL from ``{scheme}_proxy``/``all_proxy`` (either case), unless ``no_proxy`` says no."""
    env = os.environ
    if not any(k.lower().endswith("_proxy") for k in env):
        return None  # the common case costs no import
    import urllib.request
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    if bypass_proxy(host, port, proxies.get("no", "")):
        return None
    if "://" not in url:
        url = "http://" + url
    p = urllib.parse.urlsplit(url)
    try:
        p.port
    except ValueError:
        p = None  # type: ignore[assignment]
    if p is None or p.scheme not in ("http", "https") or not p.hostname:  # a setting to fix, not a failure to retry
        from ..errors import RegistryError
        shown = redact_proxy(p) if p is not None else "<unparseable>"
        raise RegistryError(f"unsupported proxy URL {shown} in the environment: use an http:// or https:// "
                            "proxy URL (https registries are reached through it with CONNECT)")
    return p


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts a host, as curl, Go and requests read it: ``*``; a name, which
    also covers its subdomains (a leading dot or ``*.`` allowed); an IP address; a CIDR block
    (``10.0.0.0/8``, common in Kubernetes); any of them with ``:port`` to exempt one port only."""
    import ipaddress
    host = host.strip("[]").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        want_port = None
        if entry.startswith("["):  # [v6]:port
            addr, _, rest = entry[1:].partition("]")
            entry, want_port = addr, rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            entry, want_port = entry.split(":")
        if want_port is not None and want_port != str(port):
            continue
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if ip is not None:
            try:
                if ip == ipaddress.ip_address(entry):
                    return True
            except ValueError:
                pass
        name = (entry[2:] if entry.startswith("*.") else entry.lstrip(".")).rstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def redact_proxy(p: urllib.parse.SplitResult) -> str:
    """A proxy URL without its credentials."""
    try:
        port = p.port
    except ValueError:
        port = None
    return f"{p.scheme}://{p.hostname or ''}" + (f":{port}" if port else "")
