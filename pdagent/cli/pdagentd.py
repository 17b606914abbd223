"""pdagentd: the daemon that delivers the spooled events to the Events API v2."""

import sys

from pdagent.cli.parser import ArgumentParser
from pdagent.config import ConfigError
from pdagent.main_config import load_main_config


def main(argv=None):
    parser = ArgumentParser(
        prog="pdagentd", description="Deliver queued PagerDuty events to the Events API v2.")
    parser.add_argument("-f", "--foreground", action="store_true",
                        help="stay in the foreground (for systemd) and also log to stderr")
    args = parser.parse_args(argv)
    from pdagent.daemon import StartError, run
    try:
        return run(load_main_config(), foreground=args.foreground)
    except (ConfigError, StartError) as error:
        print(f"pdagentd: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
