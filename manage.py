#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpagent.settings")
    from django.core.management import execute_from_command_line
    from django.utils import autoreload

    from mcpagent.env import environ_for_own_process

    restart_with_reloader = autoreload.restart_with_reloader

    def restart_with_secrets() -> int:
        # runserver's reloader serves from a child process that reads the settings again: give it back the
        # secrets the settings took out of this process's environment.
        os.environ.update(environ_for_own_process())
        return restart_with_reloader()

    autoreload.restart_with_reloader = restart_with_secrets
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
