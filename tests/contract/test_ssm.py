"""The contract through SSM Run Command, against moto's server with commands run for real."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from trainlab.testing import ThisMachinesFiles, TransportContract

pytestmark = pytest.mark.aws


class TestSSM(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, ssm_target: dict[str, Any]) -> trainlab.Session:
        return trainlab.connect(
            f"ssm://{ssm_target['instance']}",
            reuse=False,
            output_s3_bucket=ssm_target["bucket"],
            **ssm_target["options"],
        )

    def test_non_utf8_output_is_replaced_and_raw_bytes_kept(
        self, session: trainlab.Session
    ) -> None:
        # SSM hands output back as text: AWS has already replaced invalid bytes.
        r = session.run("printf '\\377\\376ok'")
        assert r.stdout == "\ufffd\ufffdok"
