"""Confluent Schema Registry ids for our schema versions: the optional ``confluent`` framing.

Subjects follow the record-name strategy by default (``io.abstream.Exposure``), so one subject holds
every version of a record whichever topic carries it. Needs ``pip install 'abstream[registry]'``.

    >>> registry = ConfluentRegistry.connect("http://schema-registry:8081")
    >>> serde = AvroSerde("Exposure", framing="confluent", registry=registry)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from abstream.errors import RegistryError, UnknownSchemaError
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.fingerprint import fingerprint64

__all__ = ["ConfluentRegistry", "record_subject"]

_NOT_FOUND = 404


def record_subject(version: SchemaVersion) -> str:
    """Record-name subject strategy: the record's full name."""
    return version.full_name


class ConfluentRegistry:
    """Maps schema versions to registry ids and back, asking the registry once per id.

    ``client`` is a ``confluent_kafka.schema_registry.SchemaRegistryClient`` (``connect`` builds one).
    With ``auto_register`` off, writers only look up ids, so they need no write access to the registry.
    """

    def __init__(
        self,
        client: Any,
        *,
        catalog: SchemaCatalog | None = None,
        auto_register: bool = True,
        subject: Callable[[SchemaVersion], str] = record_subject,
    ) -> None:
        self._client = client
        self._catalog = catalog or default_catalog()
        self._auto_register = auto_register
        self._subject = subject
        self._ids: dict[int, int] = {}
        self._versions: dict[int, SchemaVersion] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, *, config: Mapping[str, Any] | None = None, **kwargs: Any) -> ConfluentRegistry:
        """A registry at ``url`` (``mock://name`` for an in-process fake); ``config`` adds client settings."""
        return cls(_client_module().SchemaRegistryClient.new_client({"url": url, **(config or {})}), **kwargs)

    def schema_id(self, version: SchemaVersion) -> int:
        """The registry id of ``version``, registering it under its subject if allowed."""
        found = self._ids.get(version.fingerprint)
        if found is None:
            with self._lock:
                found = self._ids[version.fingerprint] = self._fetch_id(version)
                self._versions[found] = version
        return found

    def version(self, schema_id: int) -> SchemaVersion:
        """The catalog version registered under ``schema_id``; UnknownSchemaError if there is none."""
        found = self._versions.get(schema_id)
        if found is None:
            with self._lock:
                found = self._versions[schema_id] = self._fetch_version(schema_id)
        return found

    def _fetch_id(self, version: SchemaVersion) -> int:
        schema = _client_module().Schema(json.dumps(version.schema), "AVRO")
        subject = self._subject(version)
        if self._auto_register:
            return int(self._call(self._client.register_schema, subject, schema))
        return int(self._call(self._client.lookup_schema, subject, schema).schema_id)

    def _fetch_version(self, schema_id: int) -> SchemaVersion:
        registered = self._call(self._client.get_schema, schema_id)
        fingerprint = fingerprint64(json.loads(registered.schema_str))
        found = self._catalog.by_fingerprint(fingerprint)
        if found is None:
            raise UnknownSchemaError(
                f"registry schema id {schema_id} (fingerprint {fingerprint:#018x}) is not a schema version "
                "this abstream knows; upgrade abstream to read it",
                kind="unknown_schema_id",
            )
        return found

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except _client_module().SchemaRegistryError as exc:
            if exc.http_status_code == _NOT_FOUND:
                raise UnknownSchemaError(f"schema registry: {exc}", kind="unknown_schema_id") from exc
            raise RegistryError(f"schema registry refused {method.__name__}: {exc}") from exc
        except Exception as exc:  # transport errors differ by HTTP library; every one means "retry later"
            raise RegistryError(f"schema registry unreachable during {method.__name__}: {exc}") from exc


def _client_module() -> Any:
    try:
        import confluent_kafka.schema_registry as client_module
    except ImportError as exc:
        raise ImportError(
            "the Confluent framing needs the schema registry client: pip install 'abstream[registry]'"
        ) from exc
    return client_module
