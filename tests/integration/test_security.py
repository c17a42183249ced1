"""SPEC §6 / issue 7: Kafka SASL and TLS settings reach every client of the worker.

The local broker (scripts/stack) has a SASL_PLAINTEXT listener with PLAIN
beside its plaintext one; a worker configured for it must process inputs,
one with a wrong password must get nowhere, and neither logs the password.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError

from stream.security import SecurityError, broker_credentials, client_options
from stream.settings import Settings
from tests.integration.conftest import Env, Servers, free_port, send_json, wait_for
from tests.integration.test_faults import redis_answers
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


def sasl_ssl_env(servers: Servers, password: str, cafile: str | None) -> dict[str, str]:
    if servers.sasl_ssl_bootstrap is None or servers.test_cafile is None:
        pytest.skip("the broker has no SASL_SSL listener (scripts/stack's has one)")
    env = {
        "CS_KAFKA_BOOTSTRAP": servers.sasl_ssl_bootstrap,
        "CS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CS_KAFKA_SASL_USERNAME": USER,
        "CS_KAFKA_SASL_PASSWORD": password,
    }
    if cafile is not None:
        env["CS_KAFKA_SSL_CAFILE"] = cafile
    return env


async def test_a_worker_over_tls_with_scram_works_and_bad_credentials_or_ca_get_nowhere(
    env: Env, producer, reader, servers: Servers
) -> None:
    """SASL_SSL with SCRAM-SHA-512, the broker's certificate verified against the stack's CA."""
    worker = await env.started_worker(**sasl_ssl_env(servers, PASSWORD, servers.test_cafile))
    changes = await reader(env.topic("contacts.changes.v1"))
    await send_json(producer, env.topic("contacts.intake.v1"), intake("acme", ["tls@example.com"]))
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 1)
    assert values[0]["data"]["contact"]["emails"] == ["tls@example.com"]

    intruder = env.worker(datadir="intruder", **sasl_ssl_env(servers, "wrong", servers.test_cafile))
    # No CA given: the system's CAs do not know the stack's, so the broker is not trusted.
    stranger = env.worker(datadir="stranger", **sasl_ssl_env(servers, PASSWORD, None))
    intruder.start()
    stranger.start()

    def refused() -> bool:
        return "SaslAuthenticationFailed" in intruder.log_text()

    def untrusted() -> bool:
        return "CERTIFICATE_VERIFY_FAILED" in stranger.log_text()

    await wait_for(refused, 60, interval=0.5, what="the broker to refuse a wrong SCRAM password")
    await wait_for(untrusted, 60, interval=0.5, what="the worker to refuse an unknown CA")
    for w in (intruder, stranger):
        assert "contact-stream ready" not in w.log_text()
    for w in (worker, intruder, stranger):
        assert PASSWORD not in w.log_text() and "SCRAM-SHA-512=[" not in w.log_text()


async def test_the_projection_writes_to_redis_over_tls_with_a_password(
    env: Env, producer, reader, servers: Servers, tmp_path
) -> None:
    """`rediss://` with a password: the read model works, and the password is never logged."""
    if servers.test_cafile is None:
        pytest.skip("needs the stack's test CA (scripts/stack writes one)")
    tls = Path(servers.test_cafile).parent
    port, secret = free_port(), "redis-secret-7"
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is installed by scripts/stack"
    tls_args = [
        *("--tls-port", str(port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(tls / "server.pem"), "--tls-key-file", str(tls / "server.key")),
        *("--tls-ca-cert-file", str(tls / "ca.pem")),
    ]
    server = subprocess.Popen(
        [
            redis_server,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            *tls_args,
            "--requirepass",
            secret,
            *("--save", "", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"rediss://:{secret}@127.0.0.1:{port}/0?ssl_ca_certs={tls / 'ca.pem'}"
    client = aioredis.Redis.from_url(url)
    try:
        await wait_for(lambda: redis_answers(client), 10, what="the TLS redis up")
        worker = await env.started_worker(CS_REDIS_URL=url)
        changes = await reader(env.topic("contacts.changes.v1"))
        topic = env.topic("contacts.intake.v1")
        await send_json(producer, topic, intake("acme", ["rediss@example.com"]))
        values = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= 1)
        contact_id = values[0]["contact_id"]
        key = f"{env.redis_prefix}:{{acme}}:email:rediss@example.com"

        async def projected() -> bool:
            return await client.get(key) == contact_id.encode()

        await wait_for(projected, 30, what="the contact in the TLS redis")
        # Without the password the server refuses, so the worker really authenticated.
        bare = aioredis.Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls / 'ca.pem'}")
        with pytest.raises(AuthenticationError):
            await bare.get(key)
        await bare.aclose()
        assert secret not in worker.log_text()
    finally:
        await client.aclose()
        server.terminate()
        server.wait(10)


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
