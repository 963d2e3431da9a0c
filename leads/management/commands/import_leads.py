import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leads.services.imports import import_guess_mapping, import_read_headers, leads_import_stream


class Command(BaseCommand):
    help = (
        "Import leads from a CSV file, upserting by email. Columns are matched to "
        "fields by name unless given with --map HEADER=FIELD (custom fields: custom:KEY)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        try:
            with open(path, "rb") as stream:
                headers = import_read_headers(stream)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        mapping = import_guess_mapping(headers)
        for item in options["map"]:
            header, sep, field = item.partition("=")
            if not sep:
                raise CommandError(f"--map takes HEADER=FIELD, not {item!r}.")
            mapping[header] = field
        if "email" not in mapping.values():
            raise CommandError("No column maps to email; use --map HEADER=email.")
        done = {"rows": 0}

        def progress(counts: dict[str, Any]) -> None:
            done["rows"] += counts["total"]
            self.stderr.write(f"{done['rows']} rows…")

        with open(path, "rb") as stream:
            try:
                totals = leads_import_stream(
                    stream=stream,
                    mapping=mapping,
                    on_batch=progress,
                    file_name=os.path.basename(path),
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        for error in totals["errors"]:
            self.stderr.write(f"row {error['row']}: {error['error']}")
        self.stdout.write(
            f"{totals['total']} rows: {totals['created']} created, "
            f"{totals['updated']} updated, {totals['failed']} failed"
        )
