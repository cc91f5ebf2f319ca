"""``tradedesk serve``: run the whole server on this machine (or attach to a Ray cluster).

Start-up, in order:

1. settings from ``TRADEDESK_*`` (``actors.settings``), overridden by the command-line flags;
2. PostgreSQL: ``TRADEDESK_DATABASE_URL``, else an embedded pgserver in ``<data_dir>/pgdata``;
3. Redis: ``TRADEDESK_REDIS_URL``, else an embedded redis-server in ``<data_dir>/redis``;
4. Ray: ``TRADEDESK_RAY_ADDRESS``, else a local Ray instance;
5. migrations, persistence actor and shard directory (``actors.runtime.start_runtime``), the risk
   pool (``actors.risk_pool.deploy_risk_pool``; rules-only pass-through when it is not installed);
6. an admin API key written to ``<data_dir>/admin.key`` (mode 0600; the key itself is never printed);
7. the FastAPI gateway (``gateway.app.create_app``) under uvicorn on 127.0.0.1:8000; with
   ``--workers N`` (N > 1), N gateway processes on that port, each attached to the same Ray cluster
   (:mod:`gateway.workers`).

Shutdown (Ctrl-C or SIGTERM): uvicorn stops accepting requests and finishes those in flight, then
every running shard is drained (stops taking commands, flushes its pending events to PostgreSQL,
snapshots; its status in the shards table is kept, so it starts again with the next ``serve``),
then Ray (when local), the embedded Redis and the embedded PostgreSQL stop, unless another live
``tradedesk serve`` uses the same data directory (:mod:`gateway.datadir`), which it then says. In
``sync`` durability nothing is acknowledged before it is committed, so nothing acknowledged can be
lost; the drain also covers ``async`` mode.

Risk models (between 4 and 5): the champions are looked up in the registry and, on a first start,
trained from the shipped data (:mod:`gateway.serve_models`; ``--no-ml-bootstrap`` or
``TRADEDESK_RISK_ML_BOOTSTRAP=false`` turns that off); the risk pool loads them before ``/readyz``.
"""

from __future__ import annotations

import inspect
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from gateway.logfiles import LogFiles, LogToTerminal, configure_logging, where_lines

log = logging.getLogger("tradedesk.serve")

#: Gateway processes of ``serve`` (``--workers``). One: on the 2-core reference machine a second
#: process made single orders slower (each process batches apart, so shard calls get smaller, and
#: each is one more Ray driver); measured with ``tradedesk bench gateway --workers N`` (docs/gateway.md).
DEFAULT_WORKERS = 1


def build_settings(**flags: Any) -> Any:
    """Settings from the environment with the flags given on the command line (not None) taking
    precedence. ``flags``: host, port, data_dir, database_url, redis_url, ray_address, durability,
    risk_ml_bootstrap."""
    from actors.settings import Settings

    return Settings(**{k: v for k, v in flags.items() if v is not None})


_terminal: Any = None  # where the ``tradedesk:`` lines go (set by main; default sys.stderr)


def _say(msg: str) -> None:
    print(f"tradedesk: {msg}", file=_terminal or sys.stderr, flush=True)


class _Stop(Exception):
    """SIGTERM during start-up."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def _note_signal(signum: int, frame: Any) -> None:
    """Handler after uvicorn has stopped: shutdown is already under way."""


def _call_with(fn: Any, available: dict[str, Any], *positional: Any) -> Any:
    """Call ``fn`` with ``positional`` plus the keyword arguments of ``available`` it accepts."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(*positional, **available)
    return fn(*positional, **{k: v for k, v in available.items() if k in params})


class Server:
    """Everything ``serve`` started, so that :meth:`shutdown` can stop it in reverse order."""

    def __init__(self, settings: Any, key_file: Path, num_cpus: int | None = None) -> None:
        self.settings = settings
        self.key_file = key_file
        self.num_cpus = num_cpus
        self.dsn: str | None = None
        self.redis: Any = None
        self.redis_url: str | None = None
        self.ray_started = False
        self.runtime: Any = None
        self.risk: Any = None
        self.app: Any = None
        self.pgdata: Path | None = None
        self.users: Any = None

    def start(self) -> None:
        s = self.settings
        data_dir = Path(s.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        from gateway.datadir import DataDirUsers
        from persistence.embedded import ensure_database

        self.users = DataDirUsers(data_dir)
        others = self.users.join()
        if others:
            _say(f"note: tradedesk process(es) {', '.join(map(str, others))} also use {data_dir}")
        if not s.database_url:
            _say(f"starting embedded PostgreSQL in {data_dir / 'pgdata'}")
            self.pgdata = data_dir / "pgdata"
        self.dsn = ensure_database(s)
        if s.redis_url:
            self.redis_url = str(s.redis_url)
        else:
            from gateway.embedded_redis import EmbeddedRedis

            self.redis = EmbeddedRedis(data_dir / "redis")
            self.redis_url = self.redis.start()
            _say(f"embedded Redis on {self.redis_url} (data in {data_dir / 'redis'})")
        import ray

        if not ray.is_initialized():
            kw: dict[str, Any] = {
                "namespace": s.ray_namespace,
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if s.ray_address:
                ray.init(address=s.ray_address, **kw)
            else:
                if self.num_cpus:
                    kw["num_cpus"] = self.num_cpus
                ray.init(address="local", **kw)
                self.ray_started = True
        from actors.runtime import start_runtime

        deploy: Any = None
        try:
            from actors.risk_pool import deploy_risk_pool as deploy
        except ImportError:
            _say("risk pool module not installed: shards use the pass-all risk decider")
        if deploy is not None:
            from gateway.serve_models import pool_model_config

            models = pool_model_config(s, _say, _terminal or sys.stderr)
            self.risk = deploy(s, self.dsn, self.redis_url, user_config=models)
        self.runtime = start_runtime(s, self.dsn, self.redis_url, decider=self.risk)
        from persistence.api_keys import ensure_admin_key

        created = ensure_admin_key(self.dsn, self.key_file)
        log.info("admin API key %s %s (mode 0600)", "written to" if created else "kept in", self.key_file)
        from gateway.app import create_app

        self.app = _call_with(
            create_app,
            {
                "dsn": self.dsn,
                "redis_url": self.redis_url,
                "directory": getattr(self.runtime, "directory", None),
                "runtime": self.runtime,
                "risk": self.risk,
                "risk_client": self.risk,
            },
            s,
        )

    def serve(self, log_level: str = "info", workers: int = DEFAULT_WORKERS) -> None:
        """Run uvicorn until Ctrl-C / SIGTERM (uvicorn handles both and finishes in-flight requests);
        with ``workers`` > 1, that many gateway processes on the port (:mod:`gateway.workers`)."""
        import uvicorn

        s = self.settings
        if workers > 1:
            self._serve_workers(log_level, workers)
            return
        # log_config=None: uvicorn keeps the handlers of :func:`gateway.logfiles.configure_logging`
        # (access log to <data_dir>/logs/access.log, the rest to server.log)
        config = uvicorn.Config(
            self.app, host=s.host, port=s.port, log_level=log_level, lifespan="on", log_config=None
        )
        server = uvicorn.Server(config)
        base = f"http://{s.host}:{s.port}"
        for line in where_lines(base, s.data_dir, self.key_file, LogFiles.under(s.data_dir)):
            _say(line)
        _say("ready; Ctrl-C stops (shards are drained first)")
        # uvicorn re-raises the signal that stopped it once it has restored these handlers: make that
        # a no-op so that the process goes on to drain the shards instead of dying on the spot.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _note_signal)
        server.run()

    def _serve_workers(self, log_level: str, workers: int) -> None:
        import os

        import ray

        from gateway.workers import run, worker_env

        s = self.settings
        gcs = ray.get_runtime_context().gcs_address
        assert self.dsn is not None and self.redis_url is not None
        os.environ.update(worker_env(s, self.dsn, self.redis_url, gcs, risk=self.risk, log_level=log_level))
        base = f"http://{s.host}:{s.port}"
        for line in where_lines(base, s.data_dir, self.key_file, LogFiles.under(s.data_dir)):
            _say(line)
        _say(f"ready with {workers} gateway processes; Ctrl-C stops (shards are drained first)")
        run(s.host, s.port, workers, log_level, access_log=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _note_signal)

    def drain(self) -> list[dict[str, Any]]:
        """Flush and snapshot every running shard so nothing acknowledged is lost; the shards keep
        their status in the ``shards`` table (ACTIVE ones start again with the next ``serve``)."""
        if self.runtime is None:
            return []
        try:
            return self.runtime.flush_all()
        except Exception as exc:  # the cluster may already be going away
            _say(f"could not drain the shards: {exc}")
            return []

    def shutdown(self) -> None:
        t0 = time.monotonic()
        drained = self.drain()
        if drained:
            _say(f"drained {len(drained)} shard(s)")
        if self.risk is not None and hasattr(self.risk, "shutdown"):
            try:
                self.risk.shutdown()
            except Exception as exc:
                _say(f"risk pool shutdown: {exc}")
        import ray

        if self.ray_started and ray.is_initialized():
            ray.shutdown()
        self.stop_embedded()
        _say(f"stopped cleanly in {time.monotonic() - t0:.1f} s")

    def stop_embedded(self) -> None:
        """Stop the embedded Redis and PostgreSQL this process started or reused, unless another live
        ``tradedesk serve`` uses the same data directory (then say so and leave them running)."""
        others = self.users.leave() if self.users is not None else []
        if self.redis is None and self.pgdata is None:
            return
        if others:
            _say(
                f"embedded PostgreSQL/Redis left running: tradedesk process(es) "
                f"{', '.join(map(str, others))} still use {self.settings.data_dir}"
            )
            return
        from persistence.embedded import release_embedded

        if self.redis is not None:
            self.redis.stop()
        holders = release_embedded(self.pgdata) if self.pgdata is not None else []
        names = [n for n, on in (("PostgreSQL", self.pgdata is not None and not holders),
                                 ("Redis", self.redis is not None)) if on]  # fmt: skip
        if holders:
            _say(f"embedded PostgreSQL left running: process(es) {', '.join(map(str, holders))} hold it")
        if names:
            _say(f"stopped the embedded {' and '.join(names)}")


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default TRADEDESK_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default TRADEDESK_PORT, 8000)")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="embedded services' data and the logs (TRADEDESK_DATA_DIR)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="postgresql:// URL (default: embedded pgserver)")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="redis:// URL (default: embedded redis-server)")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: local Ray)")] = None,
    durability: Annotated[
        Literal["sync", "async"] | None,
        typer.Option(help="commit before ack (sync)"),
    ] = None,
    admin_key_file: Annotated[Path | None, typer.Option(help="default <data dir>/admin.key")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray instance")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn / tradedesk log level")] = "info",
    log_to_terminal: LogToTerminal = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="TRADEDESK_GATEWAY_WORKERS",
            help="gateway processes on the port, all attached to the same Ray cluster (docs/gateway.md)",
        ),
    ] = DEFAULT_WORKERS,
    ml_bootstrap: Annotated[
        bool | None,
        typer.Option(
            "--ml-bootstrap/--no-ml-bootstrap",
            help="train missing risk-model champions at start (default TRADEDESK_RISK_ML_BOOTSTRAP, on)",
        ),
    ] = None,
) -> None:
    """Run the server (embedded PostgreSQL/Redis when no URLs are configured)."""
    from pydantic import ValidationError

    try:
        settings = build_settings(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database_url,
            redis_url=redis_url,
            ray_address=ray_address,
            durability=durability,
            risk_ml_bootstrap=ml_bootstrap,
        )
    except ValidationError as exc:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        _say(f"bad setting (TRADEDESK_* environment or flag): {bad}")
        raise typer.Exit(2) from None
    raise typer.Exit(
        main(
            settings,
            admin_key_file=admin_key_file,
            num_cpus=num_cpus,
            log_level=log_level,
            log_to_terminal=log_to_terminal,
            workers=workers,
        )
    )


def main(
    settings: Any,
    *,
    admin_key_file: Path | None = None,
    num_cpus: int | None = None,
    log_level: str = "info",
    log_to_terminal: bool = False,
    workers: int = DEFAULT_WORKERS,
) -> int:
    """Start, serve until Ctrl-C / SIGTERM, shut down. Returns the exit code (0 clean, 1 failed, 2 bad
    option)."""
    global _terminal
    files = LogFiles.under(settings.data_dir)
    try:
        _terminal = configure_logging(files, log_level, log_to_terminal)
    except (ValueError, OSError) as exc:
        _say(f"cannot set up logging: {exc}")
        return 2
    _say(f"starting; data in {settings.data_dir}, logs in {files.dir}")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        _say(f"warning: binding {settings.host}; put TLS and a firewall in front of it")
    key_file = admin_key_file or Path(settings.data_dir) / "admin.key"
    srv = Server(settings, key_file, num_cpus)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        try:
            srv.start()
        finally:
            signal.signal(signal.SIGTERM, previous)
        srv.serve(log_level, workers)
    except (KeyboardInterrupt, _Stop):
        _say("interrupted during start-up")
    except Exception as exc:
        log.exception("start-up failed")
        _say(f"failed: {exc} (details in {files.server})")
        srv.shutdown()
        return 1
    srv.shutdown()
    return 0


if __name__ == "__main__":  # pragma: no cover
    typer.run(serve)
