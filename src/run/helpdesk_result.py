# helpdesk_result: an Ansible callback that writes what helpdesk needs for
# its reply, as JSON, to the file named by HELPDESK_RESULT_FILE: the task
# running now, every failed task (host, name, message), the recap counts,
# how many tasks ran on each host, the hosts: pattern of every play that
# matched no host, and whether the run got to its recap (a run where no
# host ran a task is not reported as done, whatever the exit status).
# Written by helpdesk into its state folder and enabled only for its runs.
# A notification callback: the normal screen output is left as it is.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: helpdesk_result
type: notification
short_description: summary of a run for helpdesk's reply
description: Writes the running task, failed tasks, recap counts and tasks run per host to $HELPDESK_RESULT_FILE.
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
        }
        self._pattern = ""

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
