from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from leads.services.partitions import MONTHS_AHEAD, event_partitions_maintain, is_partitioned


class Command(BaseCommand):
    help = (
        "PostgreSQL: create the events table's month partitions ahead and, with "
        "EVENT_RETENTION_MONTHS set, drop (or with EVENT_RETENTION_ARCHIVE detach) "
        "the months before the window whose events are all processed. Beat runs it daily."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retention-months",
            type=int,
            default=None,
            help="Override EVENT_RETENTION_MONTHS for this run (0 keeps everything).",
        )
        parser.add_argument("--ahead", type=int, default=MONTHS_AHEAD)

    def handle(self, *args: Any, **options: Any) -> None:
        if not is_partitioned():
            self.stdout.write("The events table is not partitioned here (PostgreSQL only).")
            return
        months = options["retention_months"]
        report = event_partitions_maintain(
            now=timezone.now(),
            retention_months=settings.EVENT_RETENTION_MONTHS if months is None else months,
            archive=settings.EVENT_RETENTION_ARCHIVE,
            ahead=options["ahead"],
        )
        for label, names in (
            ("created", report.created),
            ("dropped", report.dropped),
            ("archived (detached)", report.archived),
            ("kept, unprocessed events", report.kept_unprocessed),
            ("busy, left for the next run", report.busy),
        ):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        if report.moved:
            self.stdout.write(f"moved from the default partition: {report.moved} events")
        if report.keys_deleted:
            self.stdout.write(f"idempotency keys forgotten: {report.keys_deleted}")
