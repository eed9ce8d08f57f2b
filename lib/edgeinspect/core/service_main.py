"""The opening every service's ``main()`` shares: ``--check-config``, settings or exit 2, JSON logs.

Each service declares what differs (its name, its help, which settings hold URLs with passwords)
in a ``ServiceCli`` and hands the rest of its start to ``run_service``, so every service answers
``--check-config`` and a bad ``EI_`` variable the same way:

    CLI = ServiceCli("edgeinspect-camera", "Capture frames ...", CameraSettings, url_fields=("source",))

    def main(argv: list[str] | None = None) -> int:
        return run_service(CLI, argv, serve)

Exit codes: 0 after a clean stop, 2 for invalid settings (the message names the ``EI_`` variable).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.observability import configure_logging, get_logger
from edgeinspect.core.settings import S, redact_url

EXIT_OK = 0
EXIT_INVALID_SETTINGS = 2

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceCli(Generic[S]):
    """What one service's command line says about itself.

    ``url_fields`` are settings whose URLs may carry a password (masked in the config check;
    ``SecretStr`` fields are masked already); ``report`` replaces the JSON config check
    altogether; ``log_service`` is the ``service`` field of every log line (default: the settings'
    ``service_name``).
    """

    prog: str
    description: str
    settings: type[S]
    url_fields: tuple[str, ...] = ()
    sort_keys: bool = False
    report: Callable[[S], str] | None = None
    log_service: str | None = None

    def parse_args(self, argv: Sequence[str] | None) -> argparse.Namespace:
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        parser.add_argument(
            "--check-config", action="store_true", help="validate the settings, print them, exit"
        )
        return parser.parse_args(argv)

    def show(self, settings: S) -> str:
        """The config check's output: the settings as JSON, passwords masked."""
        if self.report is not None:
            return self.report(settings)
        shown = settings.model_dump(mode="json")
        for key in self.url_fields:
            if shown.get(key):
                shown[key] = redact_url(shown[key])
        return json.dumps(shown, indent=2, sort_keys=self.sort_keys, default=str)


def run_service(cli: ServiceCli[S], argv: Sequence[str] | None, serve: Callable[[S], int]) -> int:
    """Parse the arguments, load the settings (2 if invalid), answer ``--check-config`` (0), or
    configure JSON logs and return what ``serve(settings)`` returns."""
    args = cli.parse_args(argv)
    try:
        settings = cli.settings.load()
    except ConfigError as exc:
        print(f"{cli.prog}: {exc}", file=sys.stderr)
        return EXIT_INVALID_SETTINGS
    if args.check_config:
        print(cli.show(settings))
        return EXIT_OK
    configure_logging(settings.log_level, service=cli.log_service or cli.settings.service_name)
    return serve(settings)


def refuse(prog: str, exc: Exception) -> int:
    """A setting found wrong only while starting (a malformed URL, an unknown provider): say so in the
    log and on stderr, and return the exit code for invalid settings."""
    log.error("invalid_settings", error=str(exc))
    print(f"{prog}: {exc}", file=sys.stderr)
    return EXIT_INVALID_SETTINGS
