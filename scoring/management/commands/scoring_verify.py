from typing import Any

from django.core.management.base import BaseCommand

from scoring.services import scoring_mismatches


class Command(BaseCommand):
    help = "Check that every lead's score and category scores equal their ledger sums."

    def handle(self, *args: Any, **options: Any) -> None:
        mismatches = scoring_mismatches()
        for lead_id, what, stored, ledger in mismatches[:100]:
            self.stderr.write(f"lead {lead_id}: {what} is {stored}, ledger says {ledger}")
        if mismatches:
            self.stderr.write(f"{len(mismatches)} mismatches")
            raise SystemExit(1)
        self.stdout.write("Scores match the ledger.")
