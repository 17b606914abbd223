"""Packaging for pdagent: the PagerDuty Agent for the Events API v2."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "pdagent" / "__init__.py").read_text(encoding="utf-8"),
    re.MULTILINE,
).group(1)

setup(
    name="pdagent",
    version=VERSION,
    description="PagerDuty Agent: queue events on disk and deliver them to the Events API v2",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.6",
    packages=find_packages(include=["pdagent", "pdagent.*"]),
    # The oldest versions tested (constraints/oldest.txt, `make test-matrix`).
    install_requires=["requests>=2.18.4", "python-daemon>=2.1.2", "lockfile>=0.10.2"],
    # The commands are bin/'s launchers, copied as they are, rather than console_scripts
    # entry points: the wrapper pip writes for those may `import re`, which alone costs
    # pd-send about 10 ms, most of its start-up budget (1.5x `python -c pass`).
    scripts=sorted(str(path.relative_to(HERE)) for path in (HERE / "bin").iterdir()
                   if not path.name.startswith("_")),
    # Under the install's prefix (a venv's, or /usr/local): what an install without a
    # package copies into place (README.md, "Install without a package").
    data_files=[("share/pdagent", ["conf/pdagent.conf"]),
                ("share/pdagent/scripts", ["packaging/pdagent.service", "packaging/pdagent.init"])],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Monitoring",
    ],
)
