"""Packaging for pdagent: the PagerDuty Agent for the Events API v2."""

import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (Path(__file__).parent / "pdagent" / "__init__.py").read_text(),
    re.MULTILINE,
).group(1)

setup(
    name="pdagent",
    version=VERSION,
    description="PagerDuty Agent: queue events on disk and deliver them to the Events API v2",
    long_description=(Path(__file__).parent / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.8",
    packages=find_packages(include=["pdagent", "pdagent.*"]),
    install_requires=["requests", "python-daemon", "lockfile"],
    entry_points={
        "console_scripts": [
            "pd-send = pdagent.cli.pd_send:main",
            "pd-queue = pdagent.cli.pd_queue:main",
            "pdagentd = pdagent.cli.pdagentd:main",
            "pd-nagios = pdagent.integrations.nagios:main",
            "pd-zabbix = pdagent.integrations.zabbix:main",
            "pd-sensu = pdagent.integrations.sensu:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Monitoring",
    ],
)
