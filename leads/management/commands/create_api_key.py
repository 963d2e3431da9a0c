from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from leads.models import ApiScope
from leads.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it (alone) on stdout. It is not shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--scope", required=True, choices=ApiScope.values)

    def handle(self, *args: Any, **options: Any) -> None:
        _, key = api_key_create(name=options["name"], scope=options["scope"])
        self.stdout.write(key)
