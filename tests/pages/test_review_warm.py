"""Beat's warm-up of the scoring review: the page then reads its figures from the
cache, in every language, until the model changes."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import translation

from pages.selectors.review import report_cached, suggestions_cached
from pages.tasks import review_warm
from scoring.report import month_window
from tests.factories import LeadFactory, ReviewLogEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_the_warm_up_fills_the_cache_the_page_reads(django_assert_num_queries):
    # Given three leads and a warm-up by beat,
    LeadFactory.create_batch(3)
    assert review_warm() == 2

    # a lead that arrives after it is not in the figures the page reads (they come
    # from the cache: one query for the model's version, none for the report),
    LeadFactory.create()
    window = month_window()
    for code in ("en", "de"):
        with translation.override(code), django_assert_num_queries(1):
            assert report_cached(window=window).total_leads == 3
    with django_assert_num_queries(1):
        assert suggestions_cached().needed == 30

    # and a change to the model starts new figures.
    ReviewLogEntryFactory.create()
    assert report_cached(window=window).total_leads == 4
