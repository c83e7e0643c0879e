"""``ollama-oci serve``: the registry gateway for stock ``ollama pull`` (docs/gateway.md)."""

from __future__ import annotations

import sys

import click

from .app import CONTEXT, cli


@cli.command(context_settings=CONTEXT)
@click.option("--from", "sources", multiple=True, metavar="SOURCE",
              help="Serve models from here: a registry (registry.internal/ml), oci:DIR, ollama:DIR, or a bundle "
                   "file (.tar, .tar.zst). Repeat as PREFIX=SOURCE to route names (team/=oci:/srv/layout).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="A TOML file with sources, auth and cache settings (docs/gateway.md).")
@click.option("--listen", metavar="HOST:PORT", help="Address to listen on (default 127.0.0.1:5000).")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Cache, spooled uploads and unpacked bundles (default ~/.cache/ollama-oci/gateway).")
@click.option("--cache-size", metavar="SIZE", help="Pull-through cache cap, e.g. 200GB (default: no cache).")
@click.option("--writable", is_flag=True,
              help="Accept pushes into the --from source (an OCI layout or a registry), from keys allowed to "
                   "write (authorized_keys write=\"...\") or, with --anonymous write, from anyone.")
@click.option("--authorized-keys", type=click.Path(dir_okay=False, exists=True),
              help="Ollama servers' ssh-ed25519 public keys (~/.ollama/id_ed25519.pub), one per line; turns auth on.")
@click.option("--anonymous", type=click.Choice(["none", "read", "write"]),
              help="What a request without credentials may do (default: read, or none when keys are given).")
@click.option("--secret-file", type=click.Path(dir_okay=False, exists=True),
              help="Key for tokens and signed blob URLs; replicas behind one Service must share it.")
@click.option("--public-url", metavar="URL", help="scheme://host:port clients use, when a proxy terminates TLS.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="Serve https with this certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Private key of --tls-cert.")
@click.option("--access-log", metavar="PATH", help="JSON access log: a file, - for stderr (default), or '' for none.")
@click.option("--plain-http", is_flag=True, help="Reach the upstream registry over http:// (no TLS).")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True), help="Also trust this CA for upstream.")
@click.option("--hash-password", is_flag=True,
              help="Read a password on stdin, print its hash for [[auth.users]] password = \"...\", and exit.")
def serve(sources, config_path, listen, data_dir, cache_size, writable, authorized_keys, anonymous, secret_file,
          public_url, tls_cert, tls_key, access_log, plain_http, ca_file, hash_password) -> None:
    """Serve models to stock `ollama pull` from a private registry, OCI layout, models directory or bundle.

    Stock Ollama cannot pull from Docker distribution, Harbor, zot or Artifactory: it needs a
    Location on every blob GET, fetches byte ranges without credentials, and knows only its own
    Ed25519 key scheme. The gateway speaks that dialect in front of what you run, keeps the
    registry credentials (from the usual docker/podman auth files) to itself, and caches blobs.

    \b
    Examples:
      ollama-oci serve --from registry.internal/ml --listen 0.0.0.0:5000 --cache-size 200GB
      ollama pull --insecure gateway:5000/library/phi3:latest      # on each Ollama server
      ollama-oci serve --from oci:/srv/layout --writable --authorized-keys keys.pub   # write="team/" on a key's line
      ollama-oci serve --config gateway.toml
      echo -n s3cret | ollama-oci serve --hash-password

    Runs until SIGTERM or Ctrl-C; requests in flight get 30 s to finish. /healthz and
    /metrics (Prometheus) sit beside /v2/.
    """
    from ..gateway import config as gc
    if hash_password:
        pw = sys.stdin.readline().rstrip("\r\n")
        if not pw:
            raise click.UsageError("--hash-password: write the password on standard input")
        click.echo(gc.hash_password(pw))
        return
    cfg = gc.load_config(config_path) if config_path else gc.GatewayConfig()
    if sources:
        if config_path:
            raise click.UsageError("give sources with --from or in --config, not both")
        for s in sources:
            prefix, sep, rest = s.partition("=")
            spec, pre = (rest, prefix) if sep and ":" not in prefix else (s, "")
            cfg.sources.append(gc.parse_source(spec, prefix=pre, writable=writable))
    if not cfg.sources:
        raise click.UsageError("name what to serve: --from registry.internal/ml (or oci:DIR, ollama:DIR, a bundle), "
                               "or --config gateway.toml")
    if listen:
        cfg.host, cfg.port = gc.parse_listen(listen)
    if data_dir:
        cfg.data_dir = data_dir
    if cache_size:
        cfg.cache_max_size = gc.parse_size(cache_size, "--cache-size")
    if authorized_keys:
        with open(authorized_keys, encoding="utf-8") as f:
            cfg.keys = gc.parse_authorized_keys(f.read(1 << 20), authorized_keys)
        if anonymous is None:
            cfg.anonymous = "none"
    if anonymous:
        cfg.anonymous = anonymous
    if secret_file:
        cfg.secret = gc.read_secret(secret_file)
    for k, v in (("public_url", public_url), ("tls_cert", tls_cert), ("tls_key", tls_key), ("access_log", access_log)):
        if v is not None:
            setattr(cfg, k, v)
    if plain_http or ca_file:
        import dataclasses

        from ..transport import TransportOptions
        cfg.transport = dataclasses.replace(cfg.transport or TransportOptions(), plain_http=plain_http or
                                            (cfg.transport.plain_http if cfg.transport else False),
                                            ca_file=ca_file or (cfg.transport.ca_file if cfg.transport else None))
    try:
        from ..gateway.server import serve as run
    except ImportError as e:
        raise click.UsageError(f"ollama-oci serve needs aiohttp: pip install 'ollama-oci[serve]' ({e})") from None
    run(cfg, ready=lambda gw: click.echo(f"serving on {'https' if cfg.tls_cert else 'http'}://{cfg.host}:{cfg.port}",
                                         err=True))
