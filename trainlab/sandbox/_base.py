"""What every sandbox server shares: start, stop, and a context manager."""

from __future__ import annotations

import ssl
from pathlib import Path
from types import TracebackType
from typing import Self

from trainlab.errors import TrainlabError


class Background:
    """A local server: ``start()`` returns it, ``stop()`` ends it, ``with`` does both."""

    def start(self) -> Self:  # pragma: no cover - every server defines it
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - every server defines it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def tls_context(directory: Path, needed_by: str) -> tuple[ssl.SSLContext, str]:
    """A server's TLS context, with a certificate for 127.0.0.1 and localhost from a
    throwaway CA, and the path of that CA's PEM (in ``directory``) for clients."""
    try:
        import trustme
    except ImportError as exc:
        raise TrainlabError(f"{needed_by} needs trustme: pip install 'trainlab[sandbox]'") from exc
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = str(directory / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context, ca_file
