# helpdesk_result: an Ansible callback that writes what helpdesk needs for
# its reply, as JSON, to the file named by HELPDESK_RESULT_FILE: the task
# running now, every failed task (host, name, message), the recap counts,
# how many tasks ran on each host, the hosts: pattern of every play that
# matched no host, and whether the run got to its recap (a run where no
# host ran a task is not reported as done, whatever the exit status).
# Also each host's `helpdesk_report` fact (set_fact: a string, a list of
# lines or a mapping): the text the playbook hands back to the sender,
# with the values of the playbook's own secret-named variables (password,
# passwd, secret, token, ansible_*_pass) replaced by [redacted] before it
# is written; helpdesk redacts the request's secrets, bounds its size and
# makes it plain text.
# Written by helpdesk into its state folder and enabled only for its runs.
# A notification callback: the normal screen output is left as it is.
from __future__ import annotations

import json
import os
import re

from ansible.plugins.callback import CallbackBase

# The fact a playbook sets to hand text back to the sender.
REPORT_FACT = "helpdesk_report"
REDACTED = "[redacted]"
# Secret-looking variable names: helpdesk's own rule (password, secret,
# token) and Ansible's connection passwords (ansible_password,
# ansible_become_pass, ansible_ssh_pass, ...).
SECRET_NAME = re.compile(r"password|passwd|secret|token|^ansible(_\w+)?_pass$", re.IGNORECASE)

DOCUMENTATION = """
name: helpdesk_result
type: notification
short_description: summary of a run for helpdesk's reply
description: Writes the running task, failed tasks, recap counts, tasks run and the helpdesk_report fact per host to $HELPDESK_RESULT_FILE.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "helpdesk_result"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("HELPDESK_RESULT_FILE")
        self._data = {
            "running_task": None,
            "failures": [],
            "stats": {},
            "ran": {},
            "no_hosts_matched": [],
            "finished": False,
            "reports": {},
        }
        self._pattern = ""
        self._play = None

    def _write(self):
        if not self._path:
            return
        tmp = self._path + ".tmp"
        # 0600 whatever the umask, like everything in the state folder
        # (fchmod: a leftover from a killed run keeps its old mode).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._data, f)
        os.replace(tmp, self._path)

    def v2_playbook_on_play_start(self, play):
        self._play = play
        hosts = play.hosts
        if isinstance(hosts, (list, tuple)):
            hosts = ",".join(str(h) for h in hosts)
        self._pattern = str(hosts)

    def v2_playbook_on_no_hosts_matched(self):
        self._data["no_hosts_matched"].append(self._pattern)
        self._write()

    def _ran(self, result):
        host = result._host.get_name()
        self._data["ran"][host] = self._data["ran"].get(host, 0) + 1

    def v2_runner_on_ok(self, result):
        # Gathering facts does nothing that was asked for (when it fails,
        # it is a failed task like any other).
        if result._task.action not in ("gather_facts", "ansible.builtin.gather_facts"):
            self._ran(result)
        found, value = _reported(result._result)
        if found:
            host = result._host.get_name()
            self._data["reports"][host] = _scrubbed(value, self._secrets(result))
            self._write()

    def _secrets(self, result):
        """The values of the secret-named variables the host has, longest
        first (so a secret that holds another is hidden whole)."""
        try:
            manager = self._play.get_variable_manager()
            hostvars = manager.get_vars(play=self._play, host=result._host, task=result._task, include_hostvars=False)
        except Exception:  # no variables to hand: the report is withheld below
            return None
        values = set()
        for name, value in hostvars.items():
            if not SECRET_NAME.search(str(name)):
                continue
            try:
                if isinstance(value, str):
                    text = value
                elif _is_vaulted(value) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                    text = str(value)
                else:
                    text = None
            except Exception:
                return None
            # A template ("{{ vault_password }}") names a variable that is
            # caught by its own name.
            if text and "{{" not in text:
                values.add(str(text))
        return sorted(values, key=len, reverse=True)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._data["running_task"] = task.get_name()
        self._write()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _failed(self, result, unreachable):
        r = result._result
        msg = r.get("msg") or r.get("reason") or ""
        stderr = r.get("stderr") or ""
        if stderr and stderr not in str(msg):
            msg = f"{msg}: {stderr}" if msg else stderr
        self._data["failures"].append(
            {
                "host": result._host.get_name(),
                "task": result._task.get_name(),
                "msg": str(msg).strip(),
                "unreachable": unreachable,
            }
        )
        self._write()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._ran(result)
        if not ignore_errors:
            self._failed(result, False)

    def v2_runner_on_unreachable(self, result):
        self._failed(result, True)

    def v2_playbook_on_stats(self, stats):
        self._data["running_task"] = None
        for host in sorted(stats.processed.keys()):
            self._data["stats"][host] = stats.summarize(host)
        self._data["finished"] = True
        self._write()


def _is_vaulted(value):
    return type(value).__name__ in ("EncryptedString", "AnsibleVaultEncryptedUnicode")


def _reported(result):
    """Whether a task's result sets the report fact, and its value: a
    set_fact's own, or the last item's of a loop."""
    facts = result.get("ansible_facts") or {}
    if REPORT_FACT in facts:
        return True, facts[REPORT_FACT]
    for item in reversed(result.get("results") or []):
        facts = item.get("ansible_facts") or {} if isinstance(item, dict) else {}
        if REPORT_FACT in facts:
            return True, facts[REPORT_FACT]
    return False, None


def _scrubbed(value, secrets):
    """The report as plain JSON data (strings, lists, mappings), with every
    secret value replaced; withheld whole when the secrets are unknown."""
    if secrets is None:
        return "(report withheld: helpdesk could not check it for secrets)"
    if isinstance(value, dict):
        return {_scrubbed(str(k), secrets): _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
