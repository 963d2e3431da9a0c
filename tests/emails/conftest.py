from __future__ import annotations

from collections.abc import Iterator

import pytest

from emails import sending
from tests.emails.smtp import SMTPServer


@pytest.fixture
def smtp_server(settings) -> Iterator[SMTPServer]:
    """An SMTP server started by the test; Django's SMTP backend points at it."""
    with SMTPServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_USE_TLS = False
        settings.SITE_URL = "http://testserver"
        yield server
        sending._connection_drop()
