"""Risk models of ``tradedesk serve``: first-start champions and the model config the risk pool loads.

:func:`pool_model_config` runs before the risk pool is deployed (so the pool has loaded the
champions when ``/readyz`` first answers 200). It opens the registry the ``tradedesk models``
commands use (:func:`gateway.cli_models.open_registry`: ``TRADEDESK_MLFLOW_TRACKING_URI``, else the
configured PostgreSQL, else SQLite in ``<data_dir>/mlflow``), and, unless
``TRADEDESK_RISK_ML_BOOTSTRAP=false`` or ``serve --no-ml-bootstrap``, trains and promotes a
champion for every model without one (:func:`ml.bootstrap.ensure_champions`, with a progress bar on
the terminal). The log says which of these it is: trained (time, headline metrics), reused, off.
Without any champion the pool is rules-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("tradedesk.serve")

OFF_HINT = "TRADEDESK_RISK_ML_BOOTSTRAP=false or --no-ml-bootstrap"


def _versions(champions: dict[str, str]) -> str:
    return ", ".join(f"{m} v{v}" for m, v in sorted(champions.items()))


def pool_model_config(settings: Any, say: Callable[[str], None], bar_file: IO[str] | None) -> dict[str, Any]:
    """The risk pool's model ``user_config`` (``tracking_uri``, ``alias``), after training missing
    champions when ``settings.risk_ml_bootstrap``. ``say`` prints a terminal line; ``bar_file``
    receives the progress bar. Returns ``{}`` (rules-only) when the registry cannot be opened."""
    from gateway.cli_models import open_registry
    from ml.bootstrap import ensure_champions, missing_champions

    try:
        reg = open_registry(settings)
    except Exception as exc:
        log.exception("model registry unavailable")
        say(f"risk models: registry unavailable ({type(exc).__name__}: {exc}); rules-only")
        return {}
    cfg = {"tracking_uri": reg.tracking_uri, "alias": "champion"}
    if not settings.risk_ml_bootstrap:
        champions = reg.champion_versions()
        tail = (
            f"ML tier on with {_versions(champions)}" if champions else "no champion registered: rules-only"
        )
        say(f"risk models: first-start training off ({OFF_HINT}); {tail}")
        return cfg
    missing = missing_champions(reg)
    if missing:
        say(
            f"risk models: no champion for {', '.join(missing)}; training from the shipped data "
            f"(first start, about a minute; {OFF_HINT} turns this off)"
        )
    report = ensure_champions(reg, lock_dir=Path(settings.data_dir) / "mlflow", bar_file=bar_file)
    log.info("risk models: %s", report.summary())
    champions = report.champions
    if report.trained:
        say(f"risk models: {report.summary()}")
    for m, why in report.refused.items():
        say(f"risk models: {m} was not promoted: {why}")
    if champions:
        how = "reused, no training" if not report.trained else "loaded by the risk pool before ready"
        say(f"risk models: ML tier on with {_versions(champions)} ({how})")
    else:
        say("risk models: no champion: rules-only")
    return cfg
