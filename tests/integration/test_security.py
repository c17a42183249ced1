"""SPEC §6 / issue 7: Kafka SASL and TLS settings reach every client of the worker.

The local broker (scripts/stack) has a SASL_PLAINTEXT listener with PLAIN
beside its plaintext one; a worker configured for it must process inputs,
one with a wrong password must get nowhere, and neither logs the password.
"""

from __future__ import annotations

import ssl

import pytest

from stream.security import SecurityError, broker_credentials, client_options
from stream.settings import Settings
from tests.integration.conftest import Env, Servers, send_json, wait_for
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration

USER, PASSWORD = "contact-stream", "contact-stream-secret"  # scripts/stack's test listener


def sasl_env(servers: Servers, password: str) -> dict[str, str]:
    if servers.sasl_bootstrap is None:
        pytest.skip("the broker has no SASL listener (scripts/stack's has one)")
    return {
        "CS_KAFKA_BOOTSTRAP": servers.sasl_bootstrap,
        "CS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CS_KAFKA_SASL_MECHANISM": "PLAIN",
        "CS_KAFKA_SASL_USERNAME": USER,
        "CS_KAFKA_SASL_PASSWORD": password,
    }


async def test_a_worker_on_the_sasl_listener_works_and_a_wrong_password_gets_nowhere(
    env: Env, producer, reader, servers: Servers
) -> None:
    worker = await env.started_worker(**sasl_env(servers, PASSWORD))
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", ["sasl@example.com"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 1)
    assert values[0]["data"]["contact"]["emails"] == ["sasl@example.com"]

    intruder = env.worker(datadir="intruder", **sasl_env(servers, "not-the-password"))
    intruder.start()

    def refused() -> bool:
        text = intruder.log_text()
        return "Authentication failed" in text or "SaslAuthenticationFailed" in text

    await wait_for(refused, 60, interval=0.5, what="the broker to refuse a wrong password")
    assert "contact-stream ready" not in intruder.log_text()
    for w in (worker, intruder):
        assert PASSWORD not in w.log_text() and "not-the-password" not in w.log_text()


def test_plaintext_needs_no_credentials_and_sasl_without_a_password_is_an_error() -> None:
    assert broker_credentials(Settings()) is None
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    with pytest.raises(SecurityError, match="CS_KAFKA_SASL_PASSWORD"):
        broker_credentials(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u"))


def test_sasl_ssl_options_carry_the_mechanism_the_user_and_a_verifying_tls_context() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret",  # type: ignore[arg-type]  # noqa: S106 (a test value)
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    # The password is a SecretStr: never in the settings' repr (logs, tracebacks).
    assert "s3cret" not in repr(settings)
