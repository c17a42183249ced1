"""Kafka TLS and SASL from the settings, the same for Faust's clients and ours (SPEC §6).

Faust takes `broker_credentials`; the worker's own aiokafka clients (tenant
config follower, projection, topic creation, demo feed) take the keyword
arguments Faust derives from the same credentials, so no client connects
differently from the others.
"""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import CredentialsT

from stream.settings import Settings


class SecurityError(ValueError):
    """Security settings that cannot work together."""


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS verifying the brokers (CA bundle or the system's), with a client cert if given."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        password = settings.kafka_ssl_password
        context.load_cert_chain(
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_keyfile,
            None if password is None else password.get_secret_value(),
        )
    return context


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials` for `CS_KAFKA_SECURITY_PROTOCOL`; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(ssl_context(settings))
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        raise SecurityError(f"{protocol} needs CS_KAFKA_SASL_USERNAME and CS_KAFKA_SASL_PASSWORD")
    return SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client, matching the worker's credentials."""
    return dict(credentials_to_aiokafka_auth(broker_credentials(settings)))
