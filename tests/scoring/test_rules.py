import pytest

from scoring.models import ScoringSettings
from scoring.rules import stage_after_score


@pytest.mark.parametrize(
    ("before", "after", "stage", "moved"),
    [
        (45, 50, "lead", "mql"),
        (10, 90, "subscriber", "mql"),
        (49, 50, "lead", "mql"),
        # Not crossing: already at or past it, or still below, or going down.
        (50, 55, "lead", None),
        (40, 49, "lead", None),
        (60, 40, "lead", None),
        # Crossing, but further along (or out of) the lifecycle already.
        (45, 55, "mql", None),
        (45, 55, "sql", None),
        (45, 55, "customer", None),
        (45, 55, "disqualified", None),
    ],
)
def test_crossing_the_mql_threshold_moves_subscribers_and_leads(before, after, stage, moved):
    settings = ScoringSettings(mql_threshold=50, mql_moves_stage=True)
    assert stage_after_score(before=before, after=after, stage=stage, settings=settings) == moved


def test_the_settings_may_keep_the_stage():
    settings = ScoringSettings(mql_threshold=50, mql_moves_stage=False)
    assert stage_after_score(before=45, after=55, stage="lead", settings=settings) is None
