from typing import Any

from django.core.management.base import BaseCommand

from scoring.decay import scores_decay


class Command(BaseCommand):
    help = (
        "Decay and expire points as the categories' decay settings say, up to now "
        "(what beat runs hourly; running it again writes nothing more)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        written = scores_decay()
        if not written:
            self.stdout.write("No category decays.")
        for key, rows in written.items():
            self.stdout.write(f"{key}: {rows} rows")
