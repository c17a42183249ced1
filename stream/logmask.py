"""Every log record of the process, ours and the libraries', with emails and phones masked.

Our own log lines name no identifier, but a library at DEBUG can: aiokafka
logs whole fetch responses, record bytes included (seen in the log-masking
test). So every handler's formatter is wrapped to mask the final text, traceback
included: what looks like an email, and runs of 7 to 12 digits (phones;
millisecond timestamps have 13 and stay; UUIDs are left whole). Digits
joined by dashes are not taken for a phone, so dates stay readable: a phone
typed as 611-22-33-40 inside a library's dump of raw record bytes is the
case this leaves unmasked.
"""

from __future__ import annotations

import logging
import re

from stream.domain.normalize import mask

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A UUID (contact ids) is matched first so that none of its digit runs reads as a phone.
PHONE_OR_UUID = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})"
    r"|(?<![\w-])\+?\d(?:[ .()]?\d){6,11}(?!\d)"
)


def mask_text(text: str) -> str:
    """The text with every email-like and phone-like value masked."""
    text = EMAIL.sub(lambda m: mask(m.group()), text)
    return PHONE_OR_UUID.sub(
        lambda m: m.group() if m.group("uuid") else mask(re.sub(r"\D", "", m.group())), text
    )


class MaskingFormatter(logging.Formatter):
    """Formats with the handler's own formatter, then masks the whole text."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(self.inner.format(record))


def install(logger: logging.Logger | None = None) -> None:
    """Mask what every handler of `logger` (the root by default) writes; idempotent.

    Call it again after handlers change (the worker sets its own up at start).
    Records are left as they are: libraries format and re-read them.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, MaskingFormatter):
            handler.setFormatter(MaskingFormatter(handler.formatter))
