from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leads.models import Segment, SegmentKind
from segments.services import segment_recompute


class Command(BaseCommand):
    help = "Recompute dynamic segments (all of them, or one with --segment ID)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--segment", type=int, help="Only this segment id.")

    def handle(self, *args: Any, **options: Any) -> None:
        segments = Segment.objects.filter(kind=SegmentKind.DYNAMIC).order_by("id")
        if options["segment"] is not None:
            segments = segments.filter(pk=options["segment"])
            if not segments.exists():
                raise CommandError(f"No dynamic segment {options['segment']}.")
        for segment in segments:
            counts = segment_recompute(segment=segment)
            segment.refresh_from_db()
            self.stdout.write(
                f"{segment.name}: {counts['entered']} entered, {counts['left']} left, "
                f"{segment.member_count} members"
            )
