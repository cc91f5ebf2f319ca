"""First-start champions: train, register and promote every risk model the pool serves that has no champion.

``tradedesk serve`` calls :func:`ensure_champions` before it deploys the risk pool, so the pool loads
the champions before ``/readyz`` answers 200 and the ML tier serves from the first order. Per model
without a ``champion`` alias in the registry:

- ``payment_default`` and ``credit_limit`` are trained on the shipped UCI dataset 350 file
  (``data/credit_risk/``), ``order_anomaly`` on the shipped Agmarknet files (``data/agmarknet/``);
  the trainers are those of ``tradedesk train`` (:func:`ml.train.train`) with the in-process engine
  (``local``): Ray Train is the data scientist's path, and on a 2-core machine the Ray start-up and
  scheduling cost more than the fits. Full data, default estimator sizes: about 30 s on 2 cores for
  the three (measured; docs/risk.md "First-start champions");
- each run is logged like any training run (parameters, hold-out metrics, dataset SHA-256, plots),
  registered as a new version (version 1 in a fresh registry) tagged ``bootstrap``, and promoted to
  ``champion`` through the usual validation gate (:meth:`ml.registry.Registry.promote`); a model the
  gate refuses stays unserved (rules-only for that model) and the report says why.

Models that already have a champion are reused (no training): later starts cost only the lookup.
An inter-process lock in ``<lock_dir>`` keeps two processes on the same data directory from
training the same model twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ml.train_common import MODELS, SEED

if TYPE_CHECKING:
    from ml.registry import Registry, VersionInfo

#: Engine of the first-start training (see the module doc).
BOOTSTRAP_ENGINE = "local"
#: Model-version tag marking a version trained at first start.
BOOTSTRAP_TAG = "bootstrap"
#: Headline metric per model, for the log line.
HEADLINE = {"payment_default": "roc_auc", "order_anomaly": "synthetic_auc", "credit_limit": "r2"}


@dataclass
class BootstrapReport:
    """What :func:`ensure_champions` did: ``trained`` model -> new champion info, ``reused`` model ->
    version of the existing champion, ``refused`` model -> why it is not served, ``wall_s`` seconds."""

    trained: dict[str, VersionInfo] = field(default_factory=dict)
    reused: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def champions(self) -> dict[str, str]:
        """Model -> champion version after the run (trained and reused)."""
        return {**self.reused, **{m: i.version for m, i in self.trained.items()}}

    def summary(self) -> str:
        """One line for the log: what was trained (with its headline metric), reused or refused."""
        parts = [
            f"trained {m} v{i.version} ({HEADLINE[m]} {i.metrics.get(HEADLINE[m], float('nan')):.3f})"
            for m, i in self.trained.items()
        ]
        parts += [f"reused {m} v{v}" for m, v in self.reused.items()]
        parts += [f"{m} not served ({why})" for m, why in self.refused.items()]
        return "; ".join(parts) + (f" in {self.wall_s:.1f} s" if self.trained else "")


def missing_champions(reg: Registry) -> list[str]:
    """Models of :data:`ml.train.MODELS` without a ``champion`` alias in ``reg``."""
    from ml.registry import CHAMPION

    return [m for m in MODELS if reg.by_alias(m, CHAMPION) is None]


def ensure_champions(
    reg: Registry,
    *,
    lock_dir: str | Path | None = None,
    seed: int = SEED,
    bar_file: IO[str] | None = None,
    train: Callable[..., Any] | None = None,
) -> BootstrapReport:
    """Train, register and promote a champion for every model that has none (see the module doc).

    Args:
        reg: the registry the risk pool loads from.
        lock_dir: directory of the inter-process lock file (None: no lock).
        seed: training seed (hold-out split, estimators).
        bar_file: where the tqdm progress bar goes (None: no bar).
        train: the trainer, ``train(model, data, **kw) -> TrainResult`` (default :func:`ml.train.train`).

    Returns:
        A :class:`BootstrapReport`. Registry errors (store unreachable) propagate.
    """
    import contextlib

    t0 = time.perf_counter()
    lock: Any = contextlib.nullcontext()
    if lock_dir is not None:
        import fasteners

        Path(lock_dir).mkdir(parents=True, exist_ok=True)
        lock = fasteners.InterProcessLock(str(Path(lock_dir) / "bootstrap.lock"))
    report = BootstrapReport()
    with lock:
        todo = missing_champions(reg)
        for m in MODELS:
            if m not in todo:
                info = reg.by_alias(m, "champion")
                if info is not None:
                    report.reused[m] = info.version
        if todo:
            _train_all(reg, todo, report, seed, bar_file, train)
    report.wall_s = time.perf_counter() - t0
    return report


def _train_all(
    reg: Registry,
    todo: list[str],
    report: BootstrapReport,
    seed: int,
    bar_file: IO[str] | None,
    train: Callable[..., Any] | None,
) -> None:
    from tqdm import tqdm

    from ml.registry import PromotionRefused, registered_name
    from ml.train import train as default_train

    fit = train or default_train
    bar = tqdm(
        total=len(todo), desc="risk models", unit="model", file=bar_file, disable=bar_file is None, leave=True
    )
    try:
        for m in todo:
            bar.set_postfix_str(f"training {m}")

            def progress(msg: str, m: str = m) -> None:
                bar.set_postfix_str(f"{m}: {msg}"[:80])

            result = fit(m, None, sample=None, seed=seed, engine=BOOTSTRAP_ENGINE, progress=progress)
            bar.set_postfix_str(f"registering {m}")
            info = reg.log_training(result, challenger=False)
            reg.client.set_model_version_tag(
                registered_name(m), info.version, BOOTSTRAP_TAG, "first start of tradedesk serve"
            )
            try:
                report.trained[m] = reg.promote(m, info.version)
            except PromotionRefused as exc:
                report.refused[m] = str(exc)
            bar.update(1)
    finally:
        bar.close()
