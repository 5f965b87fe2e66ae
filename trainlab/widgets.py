"""ipywidgets for notebooks: a session dashboard and an inventory explorer.

    from trainlab.widgets import Dashboard, InventoryExplorer
    Dashboard()                                  # live sessions, cache hit rate, recent operations
    explorer = InventoryExplorer(inventory)      # filter by region, state and tag
    explorer.filtered                            # the filtered DataFrame, at hand
    explorer.columns.value = ("instance_id", "tag:role")   # the columns shown

The widgets only render: their tables come from ``trainlab.sessions()``,
``trainlab.session.recent_operations()`` and ``filter_inventory()``, which work
without a notebook, drawn by ``trainlab.tables.table_html`` (styled, unwrapped,
scrolled sideways when wide). Progress of long batches and fan-outs is
``trainlab.progress`` (``progress=True`` on ``run_many``, ``bench.compare``,
``aws.ssm_run``; fleets by default).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from trainlab.errors import TargetError
from trainlab.tables import table_html

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ANY", "EXPLORER_COLUMNS", "Dashboard", "InventoryExplorer", "filter_inventory"]

#: The choice of a filter menu that keeps every row.
ANY = "(any)"
#: The explorer's columns until the user picks others (those the inventory has).
EXPLORER_COLUMNS = (
    "instance_id",
    "name",
    "state",
    "instance_type",
    "region",
    "private_ip",
    "launch_time",
)
#: The dashboard's columns of recent operations.
OPERATION_COLUMNS = (
    "started",
    "operation",
    "target",
    "command",
    "duration_ms",
    "cached",
    "exit_status",
    "ok",
)


def _table(frame: pd.DataFrame, empty: str, *, rows: int = 50) -> str:
    return table_html(frame, empty, rows=rows)


def _count(number: int, noun: str) -> str:
    return f"<b>{number}</b> {noun}{'' if number == 1 else 's'}"


class Dashboard(w.VBox):  # type: ignore[misc]
    """Live sessions, their cache hit rates, and the latest operations, with a refresh button.

    ``refresh()`` redraws; ``auto_refresh(every=2, duration=600)`` redraws in the
    background for at most ``duration`` seconds (``stop()`` ends it sooner).
    """

    def __init__(self, *, recent: int = 15) -> None:
        self.recent = recent
        self.header = w.HTML()
        self.sessions_view = w.HTML()
        self.operations_view = w.HTML()
        self.button = w.Button(description="Refresh", icon="refresh", tooltip="redraw now")
        self.button.on_click(lambda _: self.refresh())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(
            [
                w.HBox([self.header, self.button]),
                w.HTML("<b>Sessions</b>"),
                self.sessions_view,
                w.HTML("<b>Recent operations</b>"),
                self.operations_view,
            ]
        )
        self.refresh()

    @property
    def frame(self) -> pd.DataFrame:
        """The sessions table as shown (``trainlab.sessions()``)."""
        from trainlab.session import sessions

        return sessions()

    @property
    def operations(self) -> pd.DataFrame:
        """The latest operations over every session, newest first."""
        from trainlab.session import recent_operations

        return recent_operations(self.recent)

    def refresh(self) -> None:
        """Redraw every part from the live sessions."""
        table = self.frame
        hits = int(table["cache_hits"].sum())
        lookups = hits + int(table["cache_misses"].sum())
        rate = hits / lookups if lookups else 0.0  # over every lookup, not a mean of rates
        saved = float(table["cache_saved_s"].sum()) if len(table) else 0.0
        self.header.value = (
            f"{_count(len(table), 'live session')} &middot; "
            f"{_count(int(table['commands'].sum()), 'command')} &middot; "
            f"cache: {_count(hits, 'hit')} in {lookups} lookup{'' if lookups == 1 else 's'} "
            f"(<b>{rate:.0%}</b>), "
            f"<b>{saved:.3f} s</b> saved"
            if len(table)
            else "<b>0</b> live sessions: <code>trainlab.connect(URI)</code> opens one"
        )
        import pandas as pd

        opened = pd.to_datetime(table["opened"], utc=True)  # all None before any opens
        shown = table.assign(
            opened=opened.dt.strftime("%H:%M:%S").fillna("not yet") if len(table) else opened,
            cache_hit_rate=(table["cache_hit_rate"] * 100).round(0).astype("int64").astype(str)
            + "%",
        )
        self.sessions_view.value = _table(shown, "no live sessions")
        ops = self.operations
        if len(ops):  # ok: exited 0 (a command) or answered (the rest), as CommandResult.ok
            ops = ops.assign(
                started=ops["started"].dt.strftime("%H:%M:%S.%f").str[:-3],
                duration_ms=(ops["duration_s"] * 1e3).round(3),
            )[list(OPERATION_COLUMNS)]
        self.operations_view.value = _table(ops, "no operations yet")

    def auto_refresh(self, every: float = 2.0, duration: float = 600.0) -> None:
        """Redraw every ``every`` seconds in a background thread, for at most ``duration``."""
        if every <= 0 or duration <= 0:
            raise TargetError("every and duration must be > 0 seconds")
        self.stop()
        self._stop.clear()
        rounds = max(1, int(duration / every))

        def loop() -> None:
            for _ in range(rounds):
                if self._stop.wait(every):
                    return
                self.refresh()

        self._thread = threading.Thread(target=loop, name="trainlab-dashboard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the background redraw, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def filter_inventory(
    frame: pd.DataFrame,
    *,
    regions: Iterable[str] = (),
    states: Iterable[str] = (),
    tag: str | None = None,
    value: str | None = None,
    text: str = "",
) -> pd.DataFrame:
    """The rows of an EC2 inventory that match every given criterion.

    Empty ``regions`` or ``states`` match all; ``tag`` is a tag name (``role`` or
    ``tag:role``) and ``value`` its wanted value (``None`` or ``(any)``: the tag is
    set); ``text`` matches any cell, case-insensitively.

    >>> import pandas as pd
    >>> inv = pd.DataFrame({"instance_id": ["i-1", "i-2"], "region": ["a", "b"],
    ...                     "state": ["running", "stopped"], "tag:role": ["web", "db"]})
    >>> filter_inventory(inv, tag="role", value="web")["instance_id"].tolist()
    ['i-1']
    """
    mask = frame.index == frame.index  # all rows
    regions, states = list(regions), list(states)
    if regions:
        mask &= frame["region"].isin(regions).to_numpy()
    if states:
        mask &= frame["state"].isin(states).to_numpy()
    if tag and tag != ANY:
        column = tag if tag.startswith("tag:") else f"tag:{tag}"
        if column not in frame.columns:
            known = ", ".join(c[4:] for c in frame.columns if str(c).startswith("tag:"))
            raise TargetError(f"no tag {tag!r} in this inventory; tags: {known or 'none'}")
        cells = frame[column]
        if value is None or value == ANY:
            mask &= cells.notna().to_numpy()
        else:
            mask &= (cells == value).to_numpy()
    if text:
        needle = text.lower()
        hay = frame.astype(str).apply(lambda col: col.str.lower().str.contains(needle, regex=False))
        mask &= hay.any(axis=1).to_numpy()
    return frame[mask]


class InventoryExplorer(w.VBox):  # type: ignore[misc]
    """Filter an EC2 inventory by region, state, tag and text; ``filtered`` is the result.

    ``columns`` picks the columns shown (``EXPLORER_COLUMNS`` at first, or ``shown=``);
    ``filtered`` keeps them all.
    """

    def __init__(
        self,
        inventory: pd.DataFrame,
        *,
        rows: int = 50,
        shown: Iterable[str] | None = None,
    ) -> None:
        for column in ("instance_id", "region", "state"):
            if column not in inventory.columns:
                raise TargetError(
                    f"an inventory needs a {column!r} column: use trainlab.aws.ec2_inventory()"
                )
        self.inventory = inventory
        self.rows = rows
        tags = sorted(str(c)[4:] for c in inventory.columns if str(c).startswith("tag:"))
        self.regions = w.SelectMultiple(
            options=sorted(inventory["region"].dropna().unique()), description="region", rows=4
        )
        self.states = w.SelectMultiple(
            options=sorted(inventory["state"].dropna().unique()), description="state", rows=4
        )
        self.tag = w.Dropdown(options=[ANY, *tags], value=ANY, description="tag")
        self.value = w.Dropdown(options=[ANY], value=ANY, description="value")
        self.text = w.Text(placeholder="any cell contains...", description="search")
        everything = [str(c) for c in inventory.columns]
        wanted = EXPLORER_COLUMNS if shown is None else tuple(shown)
        unknown = [c for c in wanted if c not in everything] if shown is not None else []
        if unknown:
            raise TargetError(
                f"no column {unknown[0]!r} in this inventory; columns: {', '.join(everything)}"
            )
        first = [c for c in everything if c in wanted] or everything[:7]
        self.columns = w.SelectMultiple(
            options=everything,
            value=tuple(first),
            description="columns",
            rows=min(8, len(everything)),
            tooltip="the columns shown (ctrl- or shift-click for several)",
        )
        self.count = w.HTML()
        self.table = w.HTML()
        self.tag.observe(self._tag_changed, names="value")
        for control in (self.regions, self.states, self.value, self.text, self.columns):
            control.observe(lambda _: self.update(), names="value")
        super().__init__(
            [
                w.HBox([self.regions, self.states, self.columns]),
                w.HBox([self.tag, self.value]),
                w.HBox([self.text, self.count]),
                self.table,
            ]
        )
        self.update()

    def _tag_changed(self, _: Any) -> None:
        tag = self.tag.value
        values: list[str] = []
        if tag != ANY:
            values = sorted(str(v) for v in self.inventory[f"tag:{tag}"].dropna().unique())
        self.value.options = [ANY, *values]
        self.value.value = ANY
        self.update()

    @property
    def filtered(self) -> pd.DataFrame:
        """The inventory rows the controls select."""
        return filter_inventory(
            self.inventory,
            regions=self.regions.value,
            states=self.states.value,
            tag=self.tag.value,
            value=self.value.value,
            text=self.text.value.strip(),
        )

    def update(self) -> None:
        """Redraw the count and the table from the controls."""
        chosen = self.filtered
        picked = [c for c in self.inventory.columns if str(c) in self.columns.value]
        self.count.value = (
            f"<b>{len(chosen)}</b> of {len(self.inventory)} instances, "
            f"{len(picked)} of {len(self.inventory.columns)} columns"
        )
        self.table.value = _table(chosen[picked], "no instance matches", rows=self.rows)
