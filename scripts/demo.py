"""`make demo` and `make try`: the agent end to end on this machine, against the local Events API stand-in.

Both start the stand-in, pdagentd (daemonised, as in production; as the
unprivileged `pdagent-test` user when run as root) and pd-listen (the local
Events API) on a spool of their own, and stop everything they started.
- `make demo` sends a trigger, an acknowledge, a resolve and a change event
  with pd-send, then one alert POSTed to pd-listen, printing each command as
  it could be pasted into a shell, then shows `pd-queue status` and what the
  stand-in received.
- `make try` (--shell) opens a shell in which pd-send and pd-queue use that
  spool, $PD_SERVICE_KEY is a key the stand-in takes and $PD_LISTEN_URL is
  pd-listen's address; when it exits, it shows what the stand-in received.
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (
    BIN_DIR,
    ROOT,
    ROUTING_KEY,
    Agent,
    Listen,
    StandIn,
    ensure_daemon_user,
    wait_for,
)

KEY_VARIABLE = "PD_SERVICE_KEY"  # the README's examples use it
TRY_PROMPT = "(pdagent try) $ "
LISTEN_VARIABLE = "PD_LISTEN_URL"
LISTEN_EVENT = {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "web1/http",
                "payload": {"summary": "HTTP 503 on web1 (from a tool that POSTs to the Events API)",
                            "source": "web1.example.com", "severity": "error"}}
COMMANDS = [
    ["-t", "trigger", "-d", "Disk /var is 95% full on db1", "-i", "db1/disk-var",
     "--severity", "critical", "--source", "db1.example.com", "-f", "mount=/var", "-f", "used=95%"],
    ["-t", "acknowledge", "-i", "db1/disk-var"],
    ["-t", "resolve", "-i", "db1/disk-var"],
    ["-t", "change", "-d", "Deployed api 2.4.1", "--link", "https://ci.example.com/builds/981|build 981"],
]


def pd_send_line(arguments):
    """The pd-send command line as a shell reads it (shlex.join is Python 3.8+)."""
    return f'pd-send -k "${KEY_VARIABLE}" ' + " ".join(shlex.quote(argument) for argument in arguments)


def show(title, text):
    print(f"\n== {title}")
    print(text.rstrip())


@contextlib.contextmanager
def running_agent():
    """(stand-in, agent, pd-listen) with pdagentd and pd-listen running, in a directory removed afterwards."""
    workdir = tempfile.mkdtemp(prefix="pdagent-demo-")
    os.chmod(workdir, 0o755)
    standin = StandIn(workdir)
    agent = listen = None
    try:
        print(f"Events API stand-in listening on {standin.url}")
        agent = Agent(os.path.join(workdir, "agent"), ensure_daemon_user(), standin.url)
        os.chmod(agent.base, 0o755)
        pid = agent.start_daemon(foreground=False)
        print(f"pdagentd running as uid {agent.uid}, pid {pid}, spool {agent.outqueue}")
        listen = Listen(agent)
        print(f"pd-listen (the local Events API) at {listen.url}, as uid {listen.user[0]}")
        yield standin, agent, listen
    finally:
        if listen is not None:
            listen.stop()
        if agent is not None and agent.daemon_running():
            agent.stop_daemon()
        standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def show_received(standin):
    show("the stand-in received", "\n".join(f"POST {event['path']}  {json.dumps(event['body'])}"
                                            for event in standin.received()) or "(nothing)")


def curl_line(event):
    body = json.dumps(dict(event, routing_key=f"${KEY_VARIABLE}")).replace(f'"${KEY_VARIABLE}"', f'"\'"${KEY_VARIABLE}"\'"')
    return (f"curl -sS -X POST \"${LISTEN_VARIABLE}/v2/enqueue\" -H 'Content-Type: application/json' "
            f"--data '{body}'")


def demo(standin, agent, listen):
    for arguments in COMMANDS:
        result = agent.send("-k", ROUTING_KEY, *arguments)
        show("$ " + pd_send_line(arguments), result.stdout + result.stderr)
        if result.returncode != 0:
            raise SystemExit("pd-send failed")
    status, answer = listen.post("/v2/enqueue", LISTEN_EVENT)
    show("$ " + curl_line(LISTEN_EVENT), f"HTTP {status} {json.dumps(answer)}")
    if status != 202:
        raise SystemExit("pd-listen did not take the event")
    wait_for(lambda: len(agent.names("suc")) == len(COMMANDS) + 1, timeout=15,
             message="the daemon to deliver all events")
    show("$ pd-queue status", agent.queue("status").stdout)
    show_received(standin)
    show("pdagentd.log", agent.log_text())
    show("pd-listen.log", listen.log_text())
    print(f"\nDemo OK: {len(COMMANDS)} events queued by pd-send and 1 by pd-listen, delivered by pdagentd, "
          "seen by the Events API stand-in.")


def shell_command(shell, prompt, directory):
    """argv of `shell` showing `prompt`. bash reads ~/.bashrc after taking PS1 from the
    environment, and a .bashrc that sets PS1 (root's does) would hide the prompt: bash gets an
    rc file of its own, in `directory`, that reads ~/.bashrc and then sets the prompt."""
    if os.path.basename(shell) != "bash":
        return [shell]
    rc_file = os.path.join(directory, "try.bashrc")
    with open(rc_file, "w") as rc:
        rc.write(f'[ -f ~/.bashrc ] && . ~/.bashrc\nPS1={shlex.quote(prompt)}\n')
    return [shell, "--rcfile", rc_file]


def try_shell(standin, agent, listen):
    env = agent.env(**{KEY_VARIABLE: ROUTING_KEY, LISTEN_VARIABLE: listen.url, "PS1": TRY_PROMPT,
                       "PATH": os.pathsep.join([BIN_DIR, os.path.join(ROOT, "bin"), os.environ.get("PATH", "")])})
    print(f"\nIn this shell pd-send and pd-queue use that spool (PDAGENT_CONFIG={agent.config_path}),\n"
          f"${KEY_VARIABLE} is a key the stand-in takes and ${LISTEN_VARIABLE} is pd-listen. Try:\n"
          f"    {pd_send_line(COMMANDS[0][:4])}\n"
          f"    {curl_line(LISTEN_EVENT)}\n"
          "    pd-queue status\n"
          f"What the stand-in received is in {standin.record}.\n"
          "Leave the shell (exit) to see what was delivered and stop everything.\n", flush=True)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the shell's commands
    try:
        subprocess.run(shell_command(os.environ.get("SHELL") or "/bin/sh", TRY_PROMPT, agent.base), env=env, check=False,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        wait_for(lambda: not agent.names("pdq"), timeout=15, message="the daemon to deliver what was queued")
    except AssertionError as error:
        print(f"\n{error}: still pending: {', '.join(agent.names('pdq'))}")
    show("$ pd-queue status", agent.queue("status").stdout)
    show_received(standin)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shell", action="store_true",
                        help="open a shell to send your own events (make try) instead of the demo's")
    args = parser.parse_args()
    with running_agent() as (standin, agent, listen):
        (try_shell if args.shell else demo)(standin, agent, listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
