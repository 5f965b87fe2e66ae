"""PowerShell sessions: ``run`` for text, ``run_ps`` for objects (JSON, or a DataFrame).

The session policy for ``winrm://``, ``winrms://``, ``pwsh://`` and ``pwsh+ssh://``
targets; the I/O is ``trainlab.transports.winrm``'s, ``pwsh``'s and ``pwsh_ssh``'s.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from trainlab.errors import OutputError
from trainlab.session import Session
from trainlab.transports.psrp import as_json_script

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PowerShellSession"]


class PowerShellSession(Session):
    """A session on a PowerShell host: ``run`` for text, ``run_ps`` for objects."""

    def run_ps(
        self,
        script: str,
        *,
        as_frame: bool = False,
        depth: int = 4,
        timeout: float | None = None,
        ttl: float | None = None,
        refresh: bool = False,
        check: bool = True,
    ) -> Any:
        """Run a PowerShell script and return its output objects.

        The objects travel as JSON (``ConvertTo-Json -Depth depth -Compress``), so
        they come back as lists and dicts, or as a DataFrame with ``as_frame``
        (nested properties become dotted columns). A non-zero exit raises
        ``CommandFailed`` unless ``check=False``.
        """
        result = self.run(
            as_json_script(script, depth), timeout=timeout, ttl=ttl, refresh=refresh, check=check
        )
        text = result.stdout
        # Write-Host text comes first: the JSON is written once the script has ended.
        shown = "\n".join(result.extra.get("information", []))
        if shown and text.startswith(shown):
            text = text[len(shown) :]
        text = text.strip()
        try:
            data = json.loads(text) if text else []
        except json.JSONDecodeError as exc:
            raise OutputError(
                f"the output of {script[:80]!r} on {self.uri} is not JSON ({exc.msg}); "
                "run() returns the text as it came"
            ) from exc
        if isinstance(data, dict):  # Windows PowerShell 5.1 unwraps one-element arrays
            data = [data]
        if not as_frame:
            return data
        return _frame(data)


def _frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    rows = data if isinstance(data, list) else [data]
    if rows and all(isinstance(row, dict) for row in rows):
        return pd.json_normalize(rows)
    return pd.DataFrame({"value": rows})
