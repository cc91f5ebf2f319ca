"""MLflow tracking and model registry for the risk models: runs, versions, promotion, rollback.

Backend store, in order of preference:

1. an explicit tracking URI;
2. the project's PostgreSQL (database URL): MLflow gets its own database, ``tradedesk_mlflow``, on
   the same server, created on first use, so its tables never mix with the exchange's;
3. a local file fallback: SQLite at ``<data_dir>/mlflow/mlflow.db``.

Artifacts (models, plots) go to a directory (argument, default ``<data_dir>/mlflow/artifacts``) or
to whatever artifact location the experiment already has. All of these are arguments: the gateway
CLI (``gateway.cli_models``) reads ``TRADEDESK_MLFLOW_TRACKING_URI``, ``TRADEDESK_DATABASE_URL``,
``TRADEDESK_DATA_DIR`` and ``TRADEDESK_MLFLOW_ARTIFACT_DIR`` and passes them down.

Every training run logs parameters, hold-out metrics, the dataset SHA-256, the feature list and PNG
plots, and registers a new version of the model (``tradedesk.<model>``) that becomes the
``challenger``. :meth:`Registry.promote` moves ``champion`` to a version after the validation gate
(metric floors, feature schema equal to :mod:`ml.features`), remembering the previous champion so
that :meth:`Registry.rollback` can restore it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ml import features as F

if TYPE_CHECKING:
    from ml.train import TrainResult

EXPERIMENT = "tradedesk-risk-models"
PREFIX = "tradedesk."
CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
MLFLOW_DB = "tradedesk_mlflow"

#: Validation floors per model: ``metric -> bound``. Metrics in :data:`LOWER_IS_BETTER` must be
#: at most the bound, all others at least. Overridable with ``TRADEDESK_ML_FLOORS`` (JSON of the
#: same shape) or per call. The payment-default floor sits below the published ~0.78 ROC-AUC on
#: UCI dataset 350 to leave room for sampling noise, and far above chance (0.5).
DEFAULT_FLOORS: dict[str, dict[str, float]] = {
    "payment_default": {"roc_auc": 0.75},
    "order_anomaly": {"synthetic_auc": 0.8},
    "credit_limit": {"r2": 0.3},
}
LOWER_IS_BETTER = {"brier", "rf_brier", "mae", "mae_median_baseline"}


class PromotionRefused(RuntimeError):
    """A model version failed the validation gate; the message says which check and why."""


class RegistryError(RuntimeError):
    """Unknown model or version, or nothing to roll back to."""


def registered_name(model: str) -> str:
    """Registered-model name of ``model`` (``payment_default`` -> ``tradedesk.payment_default``)."""
    F.feature_names(model)  # validates the name
    return PREFIX + model


def _sqlalchemy_url(url: str) -> str:
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _ensure_database(database_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``database_url`` if missing; return its URL."""
    import psycopg2

    parts = urlsplit(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    conn = psycopg2.connect(urlunsplit(parts._replace(scheme="postgresql")))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase):  # created concurrently
                    cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path="/" + name))


def resolve_tracking_uri(
    uri: str | None = None, *, database_url: str | None = None, data_dir: str | Path | None = None
) -> str:
    """The MLflow tracking URI to use (see the module doc for the order of preference).

    Args:
        uri: an explicit tracking URI (``postgresql://`` URLs get the psycopg2 driver).
        database_url: the exchange's PostgreSQL URL; MLflow then uses database
            :data:`MLFLOW_DB` on the same server (created on first use).
        data_dir: the local data directory; SQLite at ``<data_dir>/mlflow/mlflow.db``.

    Raises:
        RegistryError: none of the three is given.
    """
    if uri:
        return _sqlalchemy_url(uri)
    if database_url and database_url.startswith(("postgresql", "postgres:")):
        try:
            return _ensure_database(database_url, MLFLOW_DB)
        except Exception:  # pragma: no cover - server unreachable: fall back to the local file
            if data_dir is None:
                raise
    if data_dir is None:
        raise RegistryError(
            "no MLflow tracking store: give a tracking URI, a database URL or a data directory"
        )
    root = Path(data_dir) / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def default_artifact_dir(tracking_uri: str, data_dir: str | Path | None = None) -> Path | None:
    """Where new experiments keep artifacts: beside a SQLite store, else ``<data_dir>/mlflow/artifacts``;
    None when neither applies (the registry can then read but not create an experiment)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts"
    if data_dir is not None:
        return Path(data_dir) / "mlflow" / "artifacts"
    return None


def floors_for(model: str, floors: dict[str, float] | None = None) -> dict[str, float]:
    """Effective floors of ``model``: defaults, updated by ``TRADEDESK_ML_FLOORS``, then ``floors``."""
    out = dict(DEFAULT_FLOORS.get(model, {}))
    env = os.environ.get("TRADEDESK_ML_FLOORS")
    if env:
        out.update(json.loads(env).get(model, {}))
    if floors:
        out.update(floors)
    return out


def provenance(result: TrainResult) -> dict[str, str]:
    """Which data a version came from: ``data_source`` (``uci`` bootstrap file, ``desk``
    PostgreSQL settlement history, ``agmarknet`` files), and the train / hold-out row counts."""
    info, m = result.dataset.info, result.metrics
    out = {"data_source": str(info.get("data_source", "unknown"))}
    for tag, key in (("rows_train", "n_train"), ("rows_holdout", "n_holdout")):
        if key in m:
            out[tag] = str(int(m[key]))
    return out


@dataclass
class VersionInfo:
    """One registered version: model key, version, aliases, run id, metrics, features, tags."""

    model: str
    version: str
    aliases: list[str]
    run_id: str
    metrics: dict[str, float]
    features: list[str]
    source: str
    tags: dict[str, str]


class Registry:
    """MLflow client bound to one tracking URI and artifact directory.

    Args:
        tracking_uri / database_url / data_dir: where the store is (:func:`resolve_tracking_uri`).
        artifact_dir: artifact root of a new experiment (default :func:`default_artifact_dir`).

    Raises:
        RegistryError: no store given.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_dir: str | Path | None = None,
        *,
        database_url: str | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri, database_url=database_url, data_dir=data_dir)
        self.artifact_dir = (
            Path(artifact_dir) if artifact_dir else default_artifact_dir(self.tracking_uri, data_dir)
        )
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self._experiment_id: str | None = None

    # -------------------------------------------------------------------------------- tracking

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                if self.artifact_dir is None:
                    raise RegistryError("no artifact directory for a new experiment: give artifact_dir")
                self.artifact_dir.mkdir(parents=True, exist_ok=True)
                try:
                    self._experiment_id = self.client.create_experiment(
                        EXPERIMENT, artifact_location=self.artifact_dir.resolve().as_uri()
                    )
                except Exception:  # created concurrently
                    exp = self.client.get_experiment_by_name(EXPERIMENT)
                    assert exp is not None
                    self._experiment_id = exp.experiment_id
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def log_training(self, result: TrainResult, *, challenger: bool = True) -> VersionInfo:
        """Log a :class:`ml.train.TrainResult` as a run and register it as a new model version.

        Logs params, metrics, tags ``dataset_sha256``/``dataset_source``/``engine`` and the
        provenance tags of :func:`provenance` (also on the model version), artifacts
        ``features.json``, ``plots/*.png`` and ``model/`` (joblib estimator + ``meta.json``; for
        payment default also the RandomForest baseline as ``baseline/``). The new version gets the
        ``challenger`` alias unless ``challenger`` is False.
        """
        import joblib

        name = registered_name(result.model)
        run = self.client.create_run(self.experiment_id, run_name=f"{result.model}-train")
        run_id = run.info.run_id
        try:
            for k, v in result.params.items():
                self.client.log_param(run_id, k, "None" if v is None else v)
            for k, v in result.metrics.items():
                self.client.log_metric(run_id, k, float(v))
            self.client.set_tag(run_id, "model", result.model)
            self.client.set_tag(run_id, "dataset_sha256", result.dataset.sha256)
            self.client.set_tag(run_id, "dataset_source", result.dataset.source[:4000])
            self.client.set_tag(run_id, "engine", result.engine)
            for k, v in provenance(result).items():
                self.client.set_tag(run_id, k, v)
            with tempfile.TemporaryDirectory(prefix="td-mlflow-") as tmp:
                t = Path(tmp)
                (t / "features.json").write_text(json.dumps(result.feature_names))
                self.client.log_artifact(run_id, str(t / "features.json"))
                (t / "dataset.json").write_text(json.dumps(result.dataset.info, default=str))
                self.client.log_artifact(run_id, str(t / "dataset.json"))
                for plot in result.plots.values():
                    self.client.log_artifact(run_id, str(plot), "plots")
                mdir = t / "model"
                mdir.mkdir()
                joblib.dump(result.estimator, mdir / "model.joblib")
                meta = {"model": result.model, "features": result.feature_names, "metrics": result.metrics}
                (mdir / "meta.json").write_text(json.dumps(meta))
                self.client.log_artifacts(run_id, str(mdir), "model")
                if result.baseline is not None:
                    bdir = t / "baseline"
                    bdir.mkdir()
                    joblib.dump(result.baseline, bdir / "model.joblib")
                    self.client.log_artifacts(run_id, str(bdir), "baseline")
            self.client.set_terminated(run_id, "FINISHED")
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        with contextlib.suppress(Exception):  # already registered
            self.client.create_registered_model(name)
        artifact_uri = self.client.get_run(run_id).info.artifact_uri
        tags = {
            "features": json.dumps(result.feature_names),
            "metrics": json.dumps(result.metrics),
            "dataset_sha256": result.dataset.sha256,
            **provenance(result),
        }
        mv = self.client.create_model_version(name, f"{artifact_uri}/model", run_id=run_id, tags=tags)
        if challenger:
            self.client.set_registered_model_alias(name, CHALLENGER, mv.version)
        return self.version(result.model, str(mv.version))

    # -------------------------------------------------------------------------------- queries

    def _info(self, model: str, mv: Any) -> VersionInfo:
        tags = dict(mv.tags or {})
        return VersionInfo(
            model=model,
            version=str(mv.version),
            aliases=sorted(getattr(mv, "aliases", []) or []),
            run_id=mv.run_id or "",
            metrics=json.loads(tags.get("metrics", "{}")),
            features=json.loads(tags.get("features", "[]")),
            source=mv.source,
            tags=tags,
        )

    def version(self, model: str, version: str) -> VersionInfo:
        try:
            mv = self.client.get_model_version(registered_name(model), str(version))
        except Exception as exc:
            raise RegistryError(f"{model}: no version {version} ({type(exc).__name__})") from None
        return self._info(model, mv)

    def by_alias(self, model: str, alias: str) -> VersionInfo | None:
        """The version holding ``alias``, or None."""
        try:
            mv = self.client.get_model_version_by_alias(registered_name(model), alias)
        except Exception:
            return None
        return self._info(model, mv)

    def versions(self, model: str) -> list[VersionInfo]:
        """All versions of ``model``, newest first."""
        name = registered_name(model)
        try:
            mvs = self.client.search_model_versions(f"name = '{name}'")
            aliases = dict(self.client.get_registered_model(name).aliases or {})
        except Exception:
            return []
        infos = [self._info(model, mv) for mv in mvs]
        for info in infos:  # search results do not carry aliases on every backend
            info.aliases = sorted(a for a, v in aliases.items() if str(v) == info.version)
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def list_models(self) -> list[VersionInfo]:
        """Every version of every risk model (newest first within a model)."""
        out: list[VersionInfo] = []
        for model in F.MODEL_FEATURES:
            out.extend(self.versions(model))
        return out

    def load(self, model: str, alias_or_version: str = CHAMPION) -> tuple[Any, VersionInfo] | None:
        """The fitted estimator and version info for an alias (or a version number), or None."""
        import joblib
        import mlflow.artifacts

        info = (
            self.version(model, alias_or_version)
            if alias_or_version.isdigit()
            else self.by_alias(model, alias_or_version)
        )
        if info is None:
            return None
        local = mlflow.artifacts.download_artifacts(artifact_uri=info.source, tracking_uri=self.tracking_uri)
        return joblib.load(Path(local) / "model.joblib"), info

    # ----------------------------------------------------------------------- promotion/rollback

    def validate(
        self, model: str, version: str, floors: dict[str, float] | None = None, metrics: bool = True
    ) -> VersionInfo:
        """Validation gate; raises :class:`PromotionRefused` with the reason, else returns the info.

        Checks the feature schema against :mod:`ml.features` and, with ``metrics``, every floor of
        :func:`floors_for`."""
        info = self.version(model, version)
        expected = F.feature_names(model)
        if info.features != expected:
            extra = [f for f in info.features if f not in expected]
            missing = [f for f in expected if f not in info.features]
            raise PromotionRefused(
                f"{model} v{version}: feature schema mismatch with ml.features "
                f"(missing {missing}, unexpected {extra}"
                + (", order differs" if not (extra or missing) else "")
                + "); retrain with the current feature builder"
            )
        for metric, bound in (floors_for(model, floors) if metrics else {}).items():
            value = info.metrics.get(metric)
            if value is None:
                raise PromotionRefused(f"{model} v{version}: metric {metric!r} was not recorded")
            if metric in LOWER_IS_BETTER:
                if value > bound:
                    raise PromotionRefused(
                        f"{model} v{version}: {metric} = {value:.4f} above ceiling {bound}"
                    )
            elif value < bound:
                raise PromotionRefused(f"{model} v{version}: {metric} = {value:.4f} below floor {bound}")
        return info

    def _history(self, model: str) -> list[str]:
        rm = self.client.get_registered_model(registered_name(model))
        return list(json.loads((rm.tags or {}).get(HISTORY_TAG, "[]")))

    def _set_history(self, model: str, history: list[str]) -> None:
        self.client.set_registered_model_tag(registered_name(model), HISTORY_TAG, json.dumps(history[-50:]))

    def promote(self, model: str, version: str, floors: dict[str, float] | None = None) -> VersionInfo:
        """Make ``version`` the champion after :meth:`validate`; the previous champion is remembered
        for :meth:`rollback`. Clears the challenger alias if it pointed at ``version``."""
        version = str(version)
        self.validate(model, version, floors)
        name = registered_name(model)
        current = self.by_alias(model, CHAMPION)
        if current is not None and current.version == version:
            return current
        if current is not None:
            self._set_history(model, [*self._history(model), current.version])
        self.client.set_registered_model_alias(name, CHAMPION, version)
        challenger = self.by_alias(model, CHALLENGER)
        if challenger is not None and challenger.version == version:
            self.client.delete_registered_model_alias(name, CHALLENGER)
        self.client.set_model_version_tag(name, version, "promoted", "true")
        return self.version(model, version)

    def set_challenger(self, model: str, version: str) -> VersionInfo:
        """Point the ``challenger`` alias (shadow scoring) at ``version``; schema-checked."""
        self.validate(model, str(version), metrics=False)
        self.client.set_registered_model_alias(registered_name(model), CHALLENGER, str(version))
        return self.version(model, str(version))

    def rollback(self, model: str) -> VersionInfo:
        """Restore the previous champion; the demoted version is tagged ``rolled_back``."""
        name = registered_name(model)
        try:
            history = self._history(model)
        except Exception:
            raise RegistryError(f"{model}: not registered") from None
        current = self.by_alias(model, CHAMPION)
        while history and current is not None and history[-1] == current.version:
            history.pop()
        if not history:
            raise RegistryError(f"{model}: no previous champion to roll back to")
        previous = history.pop()
        self.client.set_registered_model_alias(name, CHAMPION, previous)
        if current is not None:
            self.client.set_model_version_tag(name, current.version, "rolled_back", "true")
        self._set_history(model, history)
        return self.version(model, previous)

    def champion_versions(self, alias: str = CHAMPION) -> dict[str, str]:
        """Model -> version holding ``alias`` (models without it are absent)."""
        out: dict[str, str] = {}
        for model in F.MODEL_FEATURES:
            info = self.by_alias(model, alias)
            if info is not None:
                out[model] = info.version
        return out
