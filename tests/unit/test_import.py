"""`import trainlab` stays light: heavy libraries load only when needed."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "pandas",
    "numpy",
    "paramiko",
    "boto3",
    "botocore",
    "pypsrp",
    "matplotlib",
    "IPython",
    "requests",
)


def test_import_loads_no_heavy_library() -> None:
    code = (
        "import sys, trainlab\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_running_a_command_still_needs_no_pandas() -> None:
    code = (
        "import sys, trainlab\n"
        "s = trainlab.connect('local://?mode=shell')\n"
        "assert s.run('echo hi').stdout == 'hi\\n'\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
