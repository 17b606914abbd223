"""`make demo`: the agent end to end on this machine, against the local Events API stand-in.

Starts the stand-in and pdagentd (daemonised, as in production; as the
unprivileged `pdagent-test` user when run as root), sends a trigger, an
acknowledge, a resolve and a change event with pd-send, shows `pd-queue
status` and what the stand-in received, then stops everything it started.
"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ROUTING_KEY, Agent, StandIn, ensure_daemon_user, wait_for


def show(title, text):
    print(f"\n== {title}")
    print(text.rstrip())


def main():
    workdir = tempfile.mkdtemp(prefix="pdagent-demo-")
    os.chmod(workdir, 0o755)
    standin = StandIn(workdir)
    agent = None
    try:
        print(f"Events API stand-in listening on {standin.url}")
        agent = Agent(os.path.join(workdir, "agent"), ensure_daemon_user(), standin.url)
        os.chmod(agent.base, 0o755)
        pid = agent.start_daemon(foreground=False)
        print(f"pdagentd running as uid {agent.uid}, pid {pid}, spool {agent.outqueue}")

        commands = [
            ["-t", "trigger", "-d", "Disk /var is 95% full on db1", "-i", "db1/disk-var",
             "--severity", "critical", "--source", "db1.example.com", "-f", "mount=/var", "-f", "used=95%"],
            ["-t", "acknowledge", "-i", "db1/disk-var"],
            ["-t", "resolve", "-i", "db1/disk-var"],
            ["-t", "change", "-d", "Deployed api 2.4.1", "--link", "https://ci.example.com/builds/981|build 981"],
        ]
        for arguments in commands:
            result = agent.send("-k", ROUTING_KEY, *arguments)
            show("$ pd-send -k <key> " + " ".join(arguments), result.stdout + result.stderr)
            if result.returncode != 0:
                raise SystemExit("pd-send failed")

        wait_for(lambda: len(agent.names("suc")) == len(commands), timeout=15,
                 message="the daemon to deliver all events")
        show("$ pd-queue status", agent.queue("status").stdout)
        received = "\n".join(f"POST {event['path']}  {json.dumps(event['body'])}"
                             for event in standin.received())
        show("the stand-in received", received)
        show("pdagentd.log", agent.log_text())
        print("\nDemo OK: 4 events queued by pd-send, delivered by pdagentd, seen by the Events API stand-in.")
        return 0
    finally:
        if agent is not None and agent.daemon_running():
            agent.stop_daemon()
        standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
