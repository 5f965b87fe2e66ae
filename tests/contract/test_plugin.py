"""The contract run the way a plug-in author runs it: a transport registered by entry
point, outside trainlab, tested with ``trainlab.testing``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import trainlab
from trainlab import registry
from trainlab.testing import ThisMachinesFiles, TransportContract

PLUGIN = """
from trainlab.transports.local import LocalTransport


class KeptShellTransport(LocalTransport):
    '''A third party's transport: here, the local shell under a scheme of its own.'''

    scheme = "keptshell"
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("plugin")
    (where / "keptshell_plugin.py").write_text(PLUGIN)
    dist = where / "keptshell_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: keptshell-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[trainlab.transports]\nkeptshell = keptshell_plugin:KeptShellTransport\n"
    )
    sys.path.insert(0, str(where))
    registry.refresh_plugins()
    try:
        yield "keptshell://?mode=shell"
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("keptshell_plugin", None)
        registry.refresh_plugins()


class TestAPluginTransport(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, plugin: str) -> trainlab.Session:
        s = trainlab.connect(plugin, reuse=False)
        assert type(s.transport).__module__ == "keptshell_plugin"
        return s
