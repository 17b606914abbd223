"""pd-nagios, pd-zabbix and pd-sensu, run as real processes with the inputs their monitors give.

The Nagios, Icinga 2 and Sensu command lines are taken from the example configs
under conf/ (macros filled in as the monitor would), the Zabbix message from the
template in conf/zabbix/README.md, so the examples are tested along with the
scripts. Most tests check the spooled entry; the end-to-end ones deliver it
through pdagentd to the Events API stand-in.
"""

import contextlib
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest
from helpers import ROUTING_KEY, Agent, assert_usage_error, command, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "conf")
TRUNCATION_WARNING = "summary is longer than 1024 characters; truncated"
REPLACED = "text that is not valid UTF-8 is sent with U+FFFD in place of the bad bytes"


@pytest.fixture
def home(tmp_path):
    """A spool and config under tmp_path; no daemon, so events stay in pdq/."""
    return Agent(str(tmp_path / "agent"), (os.getuid(), os.getgid()), "http://127.0.0.1:9")


def queued(home):
    return [home.read("pdq", name) for name in home.names("pdq")]


def only_event(home, result):
    """The one event `result`'s command queued, after checking it said so."""
    assert result.returncode == 0, result.stderr
    entries = queued(home)
    assert len(entries) == 1
    assert entries[0]["endpoint"] == "alert"
    event = entries[0]["event"]
    assert result.stdout == f"Event processed. Incident Key: {event['dedup_key']}\n"
    return entries[0]


def assert_refused(home, result, reason, prog):
    assert_usage_error(result, prog, reason)
    assert queued(home) == []


def run_argv(home, argv, input=None):
    """Run what a monitor would, this checkout's command standing in for the installed path."""
    assert os.path.isabs(argv[0])
    return home.run(os.path.basename(argv[0]), *argv[1:], input=input)


# -- Nagios ----------------------------------------------------------------------------

NAGIOS_CFG = os.path.join(CONF, "nagios", "pagerduty_nagios.cfg")


def nagios_command_line(command_name):
    """command_line of the `define command` named `command_name` in the example config."""
    with open(NAGIOS_CFG) as cfg:
        text = cfg.read()
    for block in re.findall(r"define\s+command\s*\{(.*?)\}", text, re.DOTALL):
        directives = dict(re.findall(r"^\s*(\w+)\s+(.*?)\s*$", block, re.MULTILINE))
        if directives["command_name"] == command_name:
            return directives["command_line"]
    raise AssertionError(f"no command {command_name} in {NAGIOS_CFG}")


def nagios_argv(command_name, macros):
    """What Nagios runs: $MACROS$ replaced, then the line split by /bin/sh itself (its quotes
    and backslashes), as Nagios has sh run a command line holding quotes."""
    program, arguments = re.sub(r"\$(\w+)\$", lambda found: macros[found.group(1)],
                                nagios_command_line(command_name)).split(" ", 1)
    split = subprocess.run(["sh", "-c", "printf '%s\\0' " + arguments], capture_output=True, text=True,
                           timeout=30, check=True)
    return [program, *split.stdout.split("\0")[:-1]]


def nagios_escaped(text):
    """A plugin's output as Nagios puts it in $LONGSERVICEOUTPUT$: \\ for a backslash, \\n for a newline."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def service_macros(**changes):
    macros = {
        "CONTACTPAGER": ROUTING_KEY, "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "web01", "HOSTALIAS": "Web server 1", "HOSTGROUPNAME": "web-servers",
        "HOSTADDRESS": "192.0.2.10",
        "SERVICEDESC": "HTTP", "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "HTTP CRITICAL - Socket timeout after 10 seconds",
        "LONGSERVICEOUTPUT": "", "SERVICEATTEMPT": "3", "LASTSERVICESTATECHANGE": "1763915000",
        "SERVICEACKAUTHOR": "", "SERVICEACKCOMMENT": "",
    }
    macros.update(changes)
    return macros


def host_macros(**changes):
    macros = {
        "CONTACTPAGER": ROUTING_KEY, "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "db01", "HOSTALIAS": "Database 1", "HOSTGROUPNAME": "",
        "HOSTADDRESS": "192.0.2.20",
        "HOSTSTATE": "DOWN", "HOSTOUTPUT": "PING CRITICAL - Packet loss = 100%",
        "LONGHOSTOUTPUT": "", "HOSTATTEMPT": "1", "LASTHOSTSTATECHANGE": "1763915000",
        "HOSTACKAUTHOR": "", "HOSTACKCOMMENT": "",
    }
    macros.update(changes)
    return macros


def fields_passed(macros):
    """The custom details pd-nagios should send: every -f field of the example command."""
    return {name: value for name, value in macros.items()
            if name not in ("CONTACTPAGER", "NOTIFICATIONTYPE")}


SERVICE_DEDUP_KEY = "event_source=service;host_name=web01;service_desc=HTTP"


def test_nagios_service_problem_from_the_example_command(home):
    macros = service_macros()
    entry = only_event(home, run_argv(home, nagios_argv("notify-service-by-pagerduty", macros)))
    event = entry["event"]
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == SERVICE_DEDUP_KEY
    payload = event["payload"]
    assert payload["summary"] == "SERVICEDESC=HTTP; SERVICESTATE=CRITICAL; HOSTNAME=web01"
    assert payload["severity"] == "critical"
    assert payload["source"] == "web01"
    assert payload["component"] == "HTTP"
    assert payload["group"] == "web-servers"
    assert payload["custom_details"] == fields_passed(macros)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["timestamp"])
    assert entry["agent"]["queued_by"] == "pd-nagios"


def test_nagios_host_problem_from_the_example_command(home):
    macros = host_macros()
    event = only_event(home, run_argv(home, nagios_argv("notify-host-by-pagerduty", macros)))["event"]
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "event_source=host;host_name=db01"
    assert event["payload"]["summary"] == "HOSTNAME=db01; HOSTSTATE=DOWN"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["source"] == "db01"
    assert "component" not in event["payload"] and "group" not in event["payload"]
    assert event["payload"]["custom_details"] == fields_passed(macros)


@pytest.mark.parametrize("command_name, macros, severity", [
    ("notify-service-by-pagerduty", service_macros(SERVICESTATE="WARNING"), "warning"),
    ("notify-service-by-pagerduty", service_macros(SERVICESTATE="UNKNOWN"), "error"),
    ("notify-service-by-pagerduty", service_macros(SERVICESTATE="OK"), "info"),
    ("notify-host-by-pagerduty", host_macros(HOSTSTATE="UNREACHABLE"), "critical"),
    ("notify-host-by-pagerduty", host_macros(HOSTSTATE="UP"), "info"),
])
def test_nagios_state_becomes_severity(home, command_name, macros, severity):
    event = only_event(home, run_argv(home, nagios_argv(command_name, macros)))["event"]
    assert event["payload"]["severity"] == severity


@pytest.mark.parametrize("notification_type, action", [
    ("ACKNOWLEDGEMENT", "acknowledge"), ("RECOVERY", "resolve")])
def test_nagios_acknowledgement_and_recovery_follow_the_problem(home, notification_type, action):
    macros = service_macros(NOTIFICATIONTYPE=notification_type, SERVICESTATE="OK",
                            SERVICEACKAUTHOR="alice", SERVICEACKCOMMENT="looking at it")
    event = only_event(home, run_argv(home, nagios_argv("notify-service-by-pagerduty", macros)))["event"]
    assert event["event_action"] == action
    assert event["dedup_key"] == SERVICE_DEDUP_KEY
    assert event["payload"]["custom_details"]["SERVICEACKAUTHOR"] == "alice"


def test_nagios_incident_key_option_replaces_the_default_dedup_key(home):
    argv = nagios_argv("notify-service-by-pagerduty", service_macros()) + ["-i", "web-http"]
    assert only_event(home, run_argv(home, argv))["event"]["dedup_key"] == "web-http"


def test_nagios_long_summary_is_truncated(home):
    macros = service_macros(SERVICEDESC="s" * 1100)
    argv = nagios_argv("notify-service-by-pagerduty", macros) + ["-i", "web-long"]
    result = run_argv(home, argv)
    summary = only_event(home, result)["event"]["payload"]["summary"]
    assert summary == "SERVICEDESC=" + "s" * (1024 - len("SERVICEDESC="))
    assert f"pd-nagios: warning: {TRUNCATION_WARNING}" in result.stderr


def test_nagios_custom_notifications_are_passed_over_quietly(home):
    """Nagios cannot leave CUSTOM out of a contact's notifications: no page, no error, one line."""
    macros = service_macros(NOTIFICATIONTYPE="CUSTOM")
    result = run_argv(home, nagios_argv("notify-service-by-pagerduty", macros))
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == ("pd-nagios: warning: CUSTOM notification not sent to PagerDuty "
                             "(only PROBLEM, ACKNOWLEDGEMENT, RECOVERY are)\n")
    assert queued(home) == []


@pytest.mark.parametrize("command_name, macros, long_output", [
    ("notify-service-by-pagerduty", service_macros, "LONGSERVICEOUTPUT"),
    ("notify-host-by-pagerduty", host_macros, "LONGHOSTOUTPUT")])
def test_nagios_escaped_newlines_of_long_output_are_newlines_again(home, command_name, macros, long_output):
    # Nagios writes the newlines of the long output as a backslash and an n.
    passed = macros(**{long_output: "/ 93% used\\n/var 97% used"})
    details = only_event(home, run_argv(home, nagios_argv(command_name, passed)))["event"]["payload"][
        "custom_details"]
    assert details[long_output] == "/ 93% used\n/var 97% used"
    assert details == {**fields_passed(passed), long_output: details[long_output]}  # the rest as given


@pytest.mark.parametrize("command_name, macros, long_output", [
    ("notify-service-by-pagerduty", service_macros, "LONGSERVICEOUTPUT"),
    ("notify-host-by-pagerduty", host_macros, "LONGHOSTOUTPUT")])
@pytest.mark.parametrize("plugin_output", [
    "C:\\new\\data is 97% full\nregex a\\nb matched",
    "\\\\server\\share\\\nline 2\\",
    "a\\\\nb \\q \\\\\\n"], ids=["backslash-n and a newline", "trailing backslashes", "runs of backslashes"])
def test_nagios_long_output_with_backslashes_arrives_as_the_plugin_wrote_it(home, command_name, macros,
                                                                            long_output, plugin_output):
    passed = macros(**{long_output: nagios_escaped(plugin_output)})
    details = only_event(home, run_argv(home, nagios_argv(command_name, passed)))["event"]["payload"][
        "custom_details"]
    assert details[long_output] == plugin_output


def test_nagios_short_output_with_backslashes_arrives_as_it_is(home):
    passed = service_macros(SERVICEOUTPUT="CRITICAL - C:\\new\\data and \\\\server\\share")
    details = only_event(home, run_argv(home, nagios_argv("notify-service-by-pagerduty", passed)))["event"][
        "payload"]["custom_details"]
    assert details["SERVICEOUTPUT"] == "CRITICAL - C:\\new\\data and \\\\server\\share"


SYSLOG_IN_A_NAMESPACE = """
set -e
mkdir "$SYSLOG_DIR/dev" && mount --bind /dev "$SYSLOG_DIR/dev" && mount -t tmpfs tmpfs /dev
for entry in "$SYSLOG_DIR"/dev/*; do ln -s "$entry" /dev/; done
ln -s "$SYSLOG_DIR/log" /dev/log
exec "$@"
"""


def run_with_syslog(home, tmp_path, argv, **kwargs):
    """(result, [messages sent to syslog]): argv run with /dev/log a socket of the test's, in a
    mount namespace of its own (this host may have no syslog; nothing of its own /dev changes)."""
    if os.geteuid() != 0:
        pytest.skip("a mount namespace needs root")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(tmp_path / "log"))
        os.chmod(tmp_path / "log", 0o666)
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", SYSLOG_IN_A_NAMESPACE,
                                 "sh", *command(os.path.basename(os.fsdecode(argv[0]))), *argv[1:]],
                                env=dict(home.env(), SYSLOG_DIR=str(tmp_path)), timeout=30, check=False,
                                **kwargs)
        log.setblocking(False)
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(log.recv(65536).decode(errors="replace"))
    return result, messages


def test_nagios_warnings_also_go_to_syslog(home, tmp_path):
    """Nagios shows a notification command's stderr only when it fails: its warnings go to syslog too."""
    result, messages = run_with_syslog(home, tmp_path, nagios_argv("notify-service-by-pagerduty",
                                                                   service_macros(NOTIFICATIONTYPE="CUSTOM")),
                                       capture_output=True, text=True)
    line = "warning: CUSTOM notification not sent to PagerDuty (only PROBLEM, ACKNOWLEDGEMENT, RECOVERY are)"
    assert (result.returncode, result.stdout, result.stderr) == (0, "", f"pd-nagios: {line}\n")
    assert len(messages) == 1 and re.fullmatch(rf"<12>(\w{{3}} [ \d]\d \d\d:\d\d:\d\d )?pd-nagios\[\d+\]: "
                                               rf"{re.escape(line)}", messages[0]), messages
    argv = [arg.encode() for arg in nagios_argv("notify-service-by-pagerduty", service_macros())]
    argv[argv.index(b"SERVICEOUTPUT=HTTP CRITICAL - Socket timeout after 10 seconds")] = b"SERVICEOUTPUT=45\xb0C"
    (tmp_path / "second").mkdir()
    result, messages = run_with_syslog(home, tmp_path / "second", argv, capture_output=True)
    assert result.returncode == 0 and len(queued(home)) == 1
    assert [message.split(": ", 1)[1] for message in messages] == [f"warning: {REPLACED}"]


def test_nagios_latin1_plugin_output_still_pages(home):
    """Nagios passes a plugin's bytes as they are: one that is not UTF-8 must not cost the page."""
    argv = [arg.encode() for arg in nagios_argv("notify-service-by-pagerduty", service_macros())]
    argv[argv.index(b"SERVICEOUTPUT=HTTP CRITICAL - Socket timeout after 10 seconds")] = b"SERVICEOUTPUT=Temp 45\xb0C"
    result = subprocess.run([*command("pd-nagios"), *argv[1:]], env=home.env(),
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == f"pd-nagios: warning: {REPLACED}\n"
    (entry,) = queued(home)
    assert entry["event"]["payload"]["custom_details"]["SERVICEOUTPUT"] == "Temp 45\ufffdC"
    assert entry["event"]["dedup_key"] == SERVICE_DEDUP_KEY


@pytest.mark.parametrize("notification_type", [
    "FLAPPINGSTART", "FLAPPINGSTOP", "DOWNTIMESTART", "DOWNTIMEEND", ""])
def test_nagios_other_notification_types_are_refused(home, notification_type):
    macros = service_macros(NOTIFICATIONTYPE=notification_type)
    result = run_argv(home, nagios_argv("notify-service-by-pagerduty", macros))
    assert_refused(home, result, f"notification type {notification_type!r} is not sent to PagerDuty",
                   "pd-nagios")


def test_nagios_empty_macro_is_refused(home):
    # Nagios expands a macro it has no value for to nothing.
    result = run_argv(home, nagios_argv("notify-service-by-pagerduty", service_macros(SERVICEDESC="")))
    assert_refused(home, result, "a service notification needs non-empty -f SERVICEDESC=...",
                   "pd-nagios")


def test_nagios_missing_macros_are_refused(home):
    argv = nagios_argv("notify-host-by-pagerduty", host_macros())
    at = argv.index("HOSTSTATE=DOWN")
    del argv[at - 1:at + 1]
    result = run_argv(home, argv)
    assert_refused(home, result, "a host notification needs non-empty -f HOSTSTATE=...", "pd-nagios")
    result = home.run("pd-nagios", "-k", ROUTING_KEY, "-t", "PROBLEM", "-n", "service")
    assert_refused(home, result, "needs non-empty -f SERVICEDESC=..., -f SERVICESTATE=..., "
                                 "-f HOSTNAME=...", "pd-nagios")


def test_nagios_field_without_equals_sign_is_a_usage_error(home):
    result = home.run("pd-nagios", "-k", ROUTING_KEY, "-t", "PROBLEM", "-n", "host",
                      "-f", "HOSTNAME")
    assert_refused(home, result, "invalid KEY=VALUE value: 'HOSTNAME'", "pd-nagios")


# -- Icinga 2 ----------------------------------------------------------------------------

ICINGA2_CONF = os.path.join(CONF, "icinga2", "pagerduty_icinga2.conf")


def icinga2_command(command_name):
    """(the command array's elements, {custom variable: the body of its {{ }} function}) of a
    NotificationCommand of the example config."""
    with open(ICINGA2_CONF) as conf:
        text = conf.read()
    found = re.search(rf'object NotificationCommand "{re.escape(command_name)}" \{{(.*?)\n\}}', text, re.DOTALL)
    assert found, f"no NotificationCommand {command_name} in {ICINGA2_CONF}"
    command = re.search(r"command = \[(.*?)\]", found.group(1), re.DOTALL).group(1)
    return re.findall(r'"([^"]*)"', command), dict(re.findall(r"vars\.(\w+) = \{\{(.*?)\}\}", found.group(1), re.DOTALL))


def icinga2_argv(command_name, macros):
    """The command array of a NotificationCommand, each element's $macros$ resolved (a custom
    variable's value given in `macros`, as Icinga 2 would have run its function)."""
    elements, _ = icinga2_command(command_name)
    return [re.sub(r"\$([\w.]+)\$", lambda macro: macros[macro.group(1)], element) for element in elements]


ICINGA2_MACROS = {
    "user.pager": ROUTING_KEY, "notification.type": "PROBLEM", "notification.author": "",
    "notification.comment": "", "host.name": "app02", "host.display_name": "App 2",
    "host.address": "192.0.2.30", "host.state": "DOWN", "host.output": "CRITICAL - Host Unreachable",
    "host.last_state_change": "1763915000.5", "service.name": "disk",
    "service.display_name": "Disk /", "service.state": "WARNING",
    "service.output": "DISK WARNING - free space: / 900 MB (9%)",
    "service.last_state_change": "1763915000.5", "pagerduty_host_group": "app-servers",
}


def test_icinga2_service_notification_from_the_example_config(home):
    argv = icinga2_argv("pagerduty-service", ICINGA2_MACROS)
    event = only_event(home, run_argv(home, argv))["event"]
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "event_source=service;host_name=app02;service_desc=disk"
    assert event["payload"]["summary"] == "SERVICEDESC=disk; SERVICESTATE=WARNING; HOSTNAME=app02"
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["custom_details"]["SERVICEDISPLAYNAME"] == "Disk /"


def test_icinga2_host_recovery_from_the_example_config(home):
    macros = dict(ICINGA2_MACROS, **{"notification.type": "RECOVERY", "host.state": "UP"})
    event = only_event(home, run_argv(home, icinga2_argv("pagerduty-host", macros)))["event"]
    assert event["event_action"] == "resolve"
    assert event["dedup_key"] == "event_source=host;host_name=app02"


@pytest.mark.parametrize("command_name", ["pagerduty-service", "pagerduty-host"])
@pytest.mark.parametrize("group", ["app-servers", ""])
def test_icinga2_host_group_becomes_the_alert_group(home, command_name, group):
    event = only_event(home, run_argv(home, icinga2_argv(command_name, dict(ICINGA2_MACROS,
                                                                            pagerduty_host_group=group))))["event"]
    assert event["payload"].get("group") == (group or None)


needs_icinga2 = pytest.mark.skipif(shutil.which("icinga2") is None, reason="icinga2 is not installed (make system-tools)")


@pytest.fixture
def readable_dir():
    """A directory any user may read (icinga2 reads its config as the user it drops to)."""
    directory = tempfile.mkdtemp(prefix="pdagent-icinga2-")
    os.chmod(directory, 0o755)
    yield pathlib.Path(directory)
    shutil.rmtree(directory)


@needs_icinga2
def test_icinga2_loads_the_example_config(readable_dir):
    (readable_dir / "icinga2.conf").write_text(f'''include "{ICINGA2_CONF}"
object CheckCommand "dummy" {{ command = [ "/bin/true" ] }}
object HostGroup "app-servers" {{ }}
object Host "app02" {{ check_command = "dummy"; groups = [ "app-servers" ]; vars.notify_pagerduty = true }}
object Service "disk" {{ host_name = "app02"; check_command = "dummy" }}
''')
    result = subprocess.run(["icinga2", "daemon", "-C", "-c", str(readable_dir / "icinga2.conf")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Instantiated 2 Notifications" in result.stdout and "Instantiated 2 NotificationCommands" in result.stdout


@needs_icinga2
@pytest.mark.parametrize("command_name", ["pagerduty-service", "pagerduty-host"])
@pytest.mark.parametrize("groups, expected", [(["app-servers", "linux"], "app-servers"), ([], "")])
def test_icinga2_runs_the_host_group_function_to_the_first_group(command_name, groups, expected):
    """The custom variable's function, run by Icinga 2 itself with macro() answering the host's groups."""
    body = icinga2_command(command_name)[1]["pagerduty_host_group"]
    script = (f"var macro = function(name) {{ if (name == \"$host.groups$\") {{ return {json.dumps(groups)} }} }}; "
              f"var value = function() {{ {body} }}; value()")
    result = subprocess.run(["icinga2", "console", "--eval", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, json.dumps(expected)), result.stderr


# -- Zabbix ------------------------------------------------------------------------------

ZABBIX_README = os.path.join(CONF, "zabbix", "README.md")


def zabbix_message(macros, template=None):
    """The action's message from conf/zabbix/README.md, as Zabbix sends it: macros
    expanded, and the \\r\\n line ends its frontend saves."""
    if template is None:
        with open(ZABBIX_README) as readme:
            blocks = re.findall(r"```\n(.*?)```", readme.read(), re.DOTALL)
        template = next(block for block in blocks if block.lstrip().startswith("name:"))
    lines = [line.strip() for line in template.strip().splitlines()]
    return "\r\n".join(re.sub(r"\{([\w.]+)\}", lambda found: macros[found.group(1)], line)
                       for line in lines)


def zabbix_macros(**changes):
    macros = {"TRIGGER.NAME": "Free disk space is less than 10% on volume /var",
              "TRIGGER.ID": "13491", "TRIGGER.STATUS": "PROBLEM", "HOST.NAME": "db01",
              "TRIGGER.SEVERITY": "High", "EVENT.ID": "880011"}
    macros.update((name.replace("_", "."), value) for name, value in changes.items())
    return macros


ZABBIX_URL = "https://zabbix.example.com/tr_events.php?triggerid=13491&eventid=880011"


def test_zabbix_trigger_as_zabbix_sends_it(home):
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger", zabbix_message(zabbix_macros()))
    entry = only_event(home, result)
    event = entry["event"]
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "13491-db01"
    payload = event["payload"]
    assert payload["summary"] == "Free disk space is less than 10% on volume /var : PROBLEM for db01"
    assert payload["severity"] == "critical"
    assert payload["source"] == "db01"
    assert payload["custom_details"] == {
        "name": "Free disk space is less than 10% on volume /var", "id": "13491",
        "status": "PROBLEM", "hostname": "db01", "severity": "High", "url": ZABBIX_URL}
    assert event["client"] == "Zabbix"
    assert event["client_url"] == ZABBIX_URL
    assert event["links"] == [{"href": ZABBIX_URL, "text": "View in Zabbix"}]
    assert entry["agent"]["queued_by"] == "pd-zabbix"


def test_zabbix_recovery_resolves_the_same_incident(home):
    message = zabbix_message(zabbix_macros(TRIGGER_STATUS="OK"))
    event = only_event(home, home.run("pd-zabbix", ROUTING_KEY, "resolve", message))["event"]
    assert event["event_action"] == "resolve"
    assert event["dedup_key"] == "13491-db01"
    assert event["payload"]["summary"].endswith(" : OK for db01")


@pytest.mark.parametrize("zabbix_severity, severity", [
    ("Disaster", "critical"), ("High", "critical"), ("Average", "error"), ("Warning", "warning"),
    ("Information", "info"), ("Not classified", "info"), ("3", "error"), ("Major", "error")])
def test_zabbix_severity_becomes_v2_severity(home, zabbix_severity, severity):
    message = zabbix_message(zabbix_macros(TRIGGER_SEVERITY=zabbix_severity))
    event = only_event(home, home.run("pd-zabbix", ROUTING_KEY, "trigger", message))["event"]
    assert event["payload"]["severity"] == severity


@pytest.mark.parametrize("spelling", ["cancelled", "canceled"])
def test_zabbix_cancelled_escalation_resolves(home, spelling):
    # Zabbix puts this line (with a plain \n) before the action's message.
    message = (f"NOTE: Escalation {spelling}: Action 'PagerDuty' disabled.\n"
               + zabbix_message(zabbix_macros()))
    event = only_event(home, home.run("pd-zabbix", ROUTING_KEY, "trigger", message))["event"]
    assert event["event_action"] == "resolve"
    assert event["dedup_key"] == "13491-db01"
    assert event["payload"]["custom_details"]["note"] == f"Escalation {spelling}: Action 'PagerDuty' disabled."


def test_zabbix_continuation_lines_and_incident_key(home):
    message = ("name:Service down\r\n"
               "on the second line\r\n"
               "status:PROBLEM\r\n"
               "hostname:app01\r\n"
               "severity:Average\r\n"
               "description:first line\r\n"
               "Free space: 5%\r\n"
               "https://wiki.example.com/disk\r\n"
               "incident_key:app01-web\r\n")
    event = only_event(home, home.run("pd-zabbix", ROUTING_KEY, "trigger", message))["event"]
    assert event["dedup_key"] == "app01-web"
    assert event["payload"]["summary"] == "Service down\non the second line : PROBLEM for app01"
    details = event["payload"]["custom_details"]
    assert details["description"] == "first line\nFree space: 5%\nhttps://wiki.example.com/disk"
    assert "links" not in event and "client_url" not in event


def test_zabbix_url_that_is_no_http_url_keeps_the_alert(home):
    message = zabbix_message(zabbix_macros(), template="name:{TRIGGER.NAME}\nid:{TRIGGER.ID}\n"
                             "status:{TRIGGER.STATUS}\nhostname:{HOST.NAME}\nurl:see the wiki")
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger", message)
    event = only_event(home, result)["event"]
    assert "pd-zabbix: warning: url 'see the wiki' is not an http(s) URL" in result.stderr
    assert "links" not in event and "client_url" not in event
    assert event["payload"]["custom_details"]["url"] == "see the wiki"
    assert event["payload"]["severity"] == "error"  # no severity line


def test_zabbix_long_name_is_truncated(home):
    message = zabbix_message(zabbix_macros(TRIGGER_NAME="x" * 2000))
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger", message)
    event = only_event(home, result)["event"]
    assert event["payload"]["summary"] == "x" * 1024
    assert f"pd-zabbix: warning: {TRUNCATION_WARNING}" in result.stderr


def test_zabbix_message_without_required_lines_is_refused(home):
    message = zabbix_message(zabbix_macros(HOST_NAME=""))
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger", message)
    assert_refused(home, result, "the message needs non-empty lines 'hostname:...'", "pd-zabbix")
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger", "Problem: something broke")
    assert_refused(home, result, "'name:...', 'status:...', 'hostname:...', 'id:...'", "pd-zabbix")


def test_zabbix_bad_subject_and_arguments_are_refused(home):
    message = zabbix_message(zabbix_macros())
    result = home.run("pd-zabbix", ROUTING_KEY, "PROBLEM: disk full", message)
    assert_refused(home, result, "the subject must be one of trigger, acknowledge, resolve",
                   "pd-zabbix")
    result = home.run("pd-zabbix", ROUTING_KEY, "trigger")
    assert_refused(home, result, "the following arguments are required: MESSAGE", "pd-zabbix")
    result = home.run("pd-zabbix", "", "trigger", message)
    assert_refused(home, result, "the routing key (the first argument: the media's 'Send to') is empty",
                   "pd-zabbix")


# -- Sensu -------------------------------------------------------------------------------

SENSU_HANDLER = os.path.join(CONF, "sensu", "pagerduty_handler.json")


def sensu_argv():
    """The pipe handler's command from the example config, with a real routing key."""
    with open(SENSU_HANDLER) as handler_file:
        handler = json.load(handler_file)["handlers"]["pagerduty"]
    assert handler["type"] == "pipe"
    return [ROUTING_KEY if arg == "YOUR-INTEGRATION-KEY" else arg
            for arg in shlex.split(handler["command"])]


def sensu1_event(**changes):
    """A Sensu 1.x event as its server pipes it to a handler."""
    event = {
        "id": "4f8b6d2e-1d3c-4a7e-9c1b-2a6f0e5d8c71",
        "client": {"name": "web01", "address": "192.0.2.10", "subscriptions": ["web"],
                   "version": "1.9.0", "timestamp": 1763915000},
        "check": {"name": "check_disk", "command": "check-disk-usage.rb -w 80 -c 90",
                  "subscribers": ["web"], "interval": 60, "handlers": ["pagerduty"],
                  "issued": 1763915000, "executed": 1763915000, "duration": 0.123,
                  "output": "CheckDisk CRITICAL: / 93%\n", "status": 2,
                  "history": ["0", "0", "2"], "total_state_change": 0},
        "occurrences": 1, "occurrences_watermark": 1, "action": "create",
        "timestamp": 1763915001, "last_ok": 1763914940, "silenced": False,
    }
    for name, value in changes.items():
        target = event["check"] if name in ("output", "status") else event
        target[name] = value
    return event


def sensu_go_event(status=1):
    return {
        "entity": {"entity_class": "agent", "system": {"hostname": "app03"},
                   "metadata": {"name": "app03", "namespace": "default"}},
        "check": {"command": "check_load -w 4 -c 8", "interval": 30, "status": status,
                  "output": "LOAD WARNING - load average: 5.1, 4.2, 3.9",
                  "state": "failing" if status else "passing",
                  "metadata": {"name": "load", "namespace": "default"}},
        "id": str(uuid.UUID(int=7)), "timestamp": 1763915000,
        "metadata": {"namespace": "default"},
    }


def run_sensu(home, event, *extra_args):
    text = event if isinstance(event, str) else json.dumps(event)
    return run_argv(home, sensu_argv() + list(extra_args), input=text)


def test_sensu1_event_through_the_example_handler(home):
    event = sensu1_event()
    entry = only_event(home, run_sensu(home, event))
    body = entry["event"]
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "web01/check_disk"
    assert body["payload"]["summary"] == "web01/check_disk : CheckDisk CRITICAL: / 93%"
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["source"] == "web01"
    assert body["payload"]["component"] == "check_disk"
    assert body["payload"]["custom_details"] == event
    assert body["client"] == "Sensu"
    assert entry["agent"]["queued_by"] == "pd-sensu"


@pytest.mark.parametrize("status, severity", [
    (0, "info"), (1, "warning"), (2, "critical"), (3, "error"), (127, "error"), ("2", "error"),
    ([2], "error"), (None, "error")])
def test_sensu_check_status_becomes_severity(home, status, severity):
    body = only_event(home, run_sensu(home, sensu1_event(status=status)))["event"]
    assert body["payload"]["severity"] == severity


@pytest.mark.parametrize("sensu_action, action", [
    ("create", "trigger"), ("resolve", "resolve"), ("flapping", "trigger")])
def test_sensu1_action_becomes_event_action(home, sensu_action, action):
    body = only_event(home, run_sensu(home, sensu1_event(action=sensu_action)))["event"]
    assert body["event_action"] == action
    assert body["dedup_key"] == "web01/check_disk"


@pytest.mark.parametrize("status, action", [(1, "trigger"), (0, "resolve")])
def test_sensu_go_event(home, status, action):
    event = sensu_go_event(status)
    body = only_event(home, run_sensu(home, event))["event"]
    assert body["event_action"] == action
    assert body["dedup_key"] == "app03/load"
    assert body["payload"]["summary"] == "app03/load : LOAD WARNING - load average: 5.1, 4.2, 3.9"
    assert body["payload"]["source"] == "app03"
    assert body["payload"]["custom_details"] == event


def test_sensu_incident_key_option_and_event_id_fallback(home):
    body = only_event(home, run_sensu(home, sensu1_event(), "-i", "disk-web"))["event"]
    assert body["dedup_key"] == "disk-web"
    assert body["payload"]["summary"] == "disk-web : CheckDisk CRITICAL: / 93%"
    os.unlink(home.path("pdq", home.names("pdq")[0]))
    event = sensu1_event()
    del event["client"]
    body = only_event(home, run_sensu(home, event))["event"]
    assert body["dedup_key"] == event["id"]


def test_sensu_long_output_is_truncated(home):
    result = run_sensu(home, sensu1_event(output="disk " * 1000))
    body = only_event(home, result)["event"]
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["summary"].startswith("web01/check_disk : disk disk")
    assert f"pd-sensu: warning: {TRUNCATION_WARNING}" in result.stderr


def test_zabbix_message_not_utf8_still_pages(home):
    message = zabbix_message(zabbix_macros()).encode().replace(b"PROBLEM", b"PROBL\xc8ME")
    result = subprocess.run(command("pd-zabbix") + [ROUTING_KEY, "trigger", message], env=home.env(),
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == f"pd-zabbix: warning: {REPLACED}\n"
    (entry,) = queued(home)
    assert entry["event"]["payload"]["summary"].endswith(": PROBL\ufffdME for db01")


def test_sensu_event_not_utf8_still_pages(home):
    data = json.dumps(sensu1_event(output="Temp 45\udcb0C")).replace("\\udcb0", "\udcb0")
    result = subprocess.run(command("pd-sensu") + sensu_argv()[1:], input=data.encode("utf-8", "surrogateescape"),
                            env=home.env(), capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == f"pd-sensu: warning: {REPLACED}\n"
    (entry,) = queued(home)
    assert entry["event"]["payload"]["summary"] == "web01/check_disk : Temp 45\ufffdC"
    assert entry["event"]["payload"]["custom_details"]["check"]["output"] == "Temp 45\ufffdC"


@pytest.mark.parametrize("name", ["pd-nagios", "pd-zabbix", "pd-sensu"])
def test_daemon_only_settings_never_stop_an_integration(home, name):
    """A setting only pdagentd reads, even one it refuses, is not the integration's business."""
    with open(home.config_path, "a") as config_file:
        config_file.write("ca_bundle = /nowhere/ca.pem\nmystery_key = 1\n")
    if name == "pd-nagios":
        result = run_argv(home, nagios_argv("notify-service-by-pagerduty", service_macros()))
    elif name == "pd-zabbix":
        result = home.run("pd-zabbix", ROUTING_KEY, "trigger", zabbix_message(zabbix_macros()))
    else:
        result = run_sensu(home, sensu1_event())
    only_event(home, result)


@pytest.mark.parametrize("text, reason", [
    ('{"client": {"name": "web01"}, "check": ', "standard input is not a valid Sensu event"),
    ("", "standard input is not a valid Sensu event"),
    ('[{"check": {}}]', "standard input must hold one JSON object"),
    ('{"check": {"output": "x", "status": NaN}}', "NaN is not a JSON value"),
    ('{"check": {"output": "x", "status": 2}}', "give a dedup key with -i"),
])
def test_sensu_unusable_input_is_refused(home, text, reason):
    assert_refused(home, run_sensu(home, text), reason, "pd-sensu")


# -- end to end: pdagentd delivers to the Events API stand-in ----------------------------

def delivered(agent, standin):
    """The one body the stand-in received, once pdagentd has sent the queued event."""
    agent.start_daemon()
    bodies = wait_for(standin.bodies, timeout=20, message="the event at the stand-in")
    wait_for(lambda: agent.names("suc"), message="the event moved to suc/")
    assert len(bodies) == 1
    return bodies[0]


def test_nagios_event_delivered(agent, standin):
    macros = service_macros(SERVICESTATE="WARNING")
    result = run_argv(agent, nagios_argv("notify-service-by-pagerduty", macros))
    assert result.returncode == 0, result.stderr
    body = delivered(agent, standin)
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == SERVICE_DEDUP_KEY
    assert body["payload"]["summary"] == "SERVICEDESC=HTTP; SERVICESTATE=WARNING; HOSTNAME=web01"
    assert body["payload"]["severity"] == "warning"
    assert body["payload"]["source"] == "web01"
    assert body["payload"]["custom_details"] == fields_passed(macros)


def test_zabbix_event_delivered(agent, standin):
    message = zabbix_message(zabbix_macros(TRIGGER_SEVERITY="Average"))
    result = agent.run("pd-zabbix", ROUTING_KEY, "trigger", message)
    assert result.returncode == 0, result.stderr
    body = delivered(agent, standin)
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "13491-db01"
    assert body["payload"]["summary"] == "Free disk space is less than 10% on volume /var : PROBLEM for db01"
    assert body["payload"]["severity"] == "error"
    assert body["payload"]["source"] == "db01"
    assert body["payload"]["custom_details"]["id"] == "13491"
    assert body["links"] == [{"href": ZABBIX_URL, "text": "View in Zabbix"}]
    assert body["client_url"] == ZABBIX_URL


def test_sensu_event_delivered(agent, standin):
    event = sensu1_event(action="resolve", status=0, output="CheckDisk OK: / 40%\n")
    result = run_sensu(agent, event)
    assert result.returncode == 0, result.stderr
    body = delivered(agent, standin)
    assert body["event_action"] == "resolve"
    assert body["dedup_key"] == "web01/check_disk"
    assert body["payload"]["summary"] == "web01/check_disk : CheckDisk OK: / 40%"
    assert body["payload"]["severity"] == "info"
    assert body["payload"]["source"] == "web01"
    assert body["payload"]["custom_details"] == event
