"""`from pdagent.thirdparty.argparse import ArgumentParser` keeps working: it is the standard library's."""

from argparse import *
from argparse import ArgumentParser  # noqa: F401
