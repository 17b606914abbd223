"""`from pdagent.thirdparty.argparse import ArgumentParser` keeps working: it is the standard library's."""

from argparse import *  # noqa: F401,F403
from argparse import ArgumentParser  # noqa: F401
