"""Demo data: one user per role, about 300 B2B and B2C leads and six months of their
email, website and product activity, the same on every run. The history has
outcomes: where each lead came from, how far down the funnel it got and when,
and its deal (won, lost or open); who buys follows job title, company size and
pricing-page visits, so the scoring review has something true to find."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from core.roles import Role
from core.scope import event_scope, processing_batch
from core.vocabulary import LEAD_ACTIVITY_TYPES
from emails.models import EmailKind, EmailTemplate, Sender
from emails.services import email_settings_get, email_settings_update, template_create
from flows.engine import flows_on_event
from flows.lifecycle import flow_publish
from flows.models import Flow
from flows.templates_catalog import (
    FLOW_TEMPLATES,
    FlowTemplate,
    flow_create_from_template,
    scoring_columns,
)
from leads.models import (
    CLOSED_STAGES,
    Event,
    Lead,
    LeadSource,
    Opportunity,
    OpportunityStatus,
    Segment,
    Stage,
    Tag,
    Task,
)
from leads.services.events import derived_collected, event_keys_claim, events_process
from scoring.services import grades_recompute, scoring_settings
from segments.services import segment_create, segment_recompute

SEED = 2026
LEAD_COUNT = 300
SALES_OWNED = 60
HISTORY_DAYS = 182
SOURCE = "demo"
DEMO_PASSWORD = "leadflow"  # noqa: S105 - the known password of demo installs, not a secret
USER_DOMAIN = "demo.leadflow.local"
SITE = "https://www.leadflow.example"

# username, role, first name, last name
USERS = [
    ("admin", Role.ADMIN, "Jana", "Richter"),
    ("marketer", Role.MARKETER, "Lena", "Fischer"),
    ("sales", Role.SALES, "Tom", "Becker"),
]


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


FIRST_NAMES = {
    "de": _words(
        """Anna, Lukas, Sophie, Jonas, Marie, Felix, Laura, Maximilian, Katharina, Tobias,
        Julia, Sebastian, Lea, Florian, Hannah, Moritz, Sarah, Daniel, Johanna, Matthias,
        Clara, Stefan, Miriam, Jürgen, Sabine, Andreas, Nina, Philipp, Franziska, Benedikt"""
    ),
    "en": _words(
        """Emily, James, Olivia, Michael, Sophia, William, Emma, Benjamin, Ava, Daniel,
        Charlotte, Matthew, Grace, Ethan, Chloe, Jack, Hannah, Ryan, Megan, Oliver, Jessica,
        Thomas, Lucy, Noah, Rachel, Samuel, Amelia, David, Priya, Marcus"""
    ),
    "fr": _words(
        """Camille, Louis, Léa, Hugo, Chloé, Lucas, Manon, Julien, Inès, Mathieu, Élodie,
        Antoine, Claire, Nicolas, Margaux, Théo, Amélie, Pierre, Céline, Romain"""
    ),
    "nl": _words("Daan, Sanne, Lars, Femke, Bram, Lotte, Thijs, Eva, Ruben, Anouk, Jeroen, Maaike"),
    "es": _words("Lucía, Pablo, María, Javier, Carmen, Alejandro, Elena, Diego, Sofía, Álvaro"),
    "sv": _words("Erik, Elsa, Oskar, Maja, Johan, Ingrid, Linnea, Anders"),
}
LAST_NAMES = {
    "de": _words(
        """Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz,
        Hoffmann, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann,
        Braun, Krüger, Hofmann, Hartmann, Lange, Huber, Gruber, Steiner, Moser, Keller,
        Brunner, Baumann, Frei, Vogel, Lehmann, Krause, Maier, Pichler, Egger"""
    ),
    "en": _words(
        """Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Taylor, Anderson,
        Thomas, Moore, Martin, Thompson, White, Clark, Lewis, Walker, Hall, Young, King,
        Wright, Green, Baker, Evans, Patel, Hughes, Edwards, Murphy, O'Brien, Campbell,
        Nguyen, Chen"""
    ),
    "fr": _words(
        """Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau,
        Simon, Laurent, Lefèvre, Michel, Garcia, Fontaine, Rousseau, Girard, Bonnet, Mercier"""
    ),
    "nl": _words(
        """de Jong, Jansen, de Vries, van den Berg, Bakker, Visser, Smit, Meijer, Mulder,
        de Boer, Bos, Vos"""
    ),
    "es": _words(
        "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, Romero"
    ),
    "sv": _words("Andersson, Johansson, Karlsson, Nilsson, Eriksson, Larsson, Lindqvist"),
}

# country, weight, language of the names there, cities
PLACES = [
    ("Germany", 30, "de", "Berlin, Munich, Hamburg, Cologne, Frankfurt, Stuttgart, Leipzig"),
    ("Austria", 10, "de", "Vienna, Graz, Linz, Salzburg"),
    ("Switzerland", 7, "de", "Zurich, Basel, Bern"),
    ("Switzerland", 3, "fr", "Geneva, Lausanne"),
    ("United States", 20, "en", "New York, San Francisco, Austin, Boston, Chicago, Seattle"),
    ("United Kingdom", 12, "en", "London, Manchester, Edinburgh, Bristol"),
    ("France", 8, "fr", "Paris, Lyon, Toulouse, Bordeaux, Nantes"),
    ("Netherlands", 5, "nl", "Amsterdam, Rotterdam, Utrecht"),
    ("Spain", 3, "es", "Madrid, Barcelona, Valencia"),
    ("Sweden", 2, "sv", "Stockholm, Gothenburg"),
]

COUNTRY_WEIGHTS = [(country, weight) for country, weight, _, _ in PLACES]

FREE_MAIL = {
    "Germany": ["gmail.com", "gmx.de", "web.de", "t-online.de"],
    "Austria": ["gmail.com", "gmx.at", "aon.at"],
    "Switzerland": ["gmail.com", "bluewin.ch", "gmx.ch"],
    "United States": ["gmail.com", "yahoo.com", "outlook.com", "icloud.com"],
    "United Kingdom": ["gmail.com", "outlook.com", "hotmail.co.uk", "btinternet.com"],
    "France": ["gmail.com", "orange.fr", "free.fr"],
    "Netherlands": ["gmail.com", "hotmail.com", "ziggo.nl"],
    "Spain": ["gmail.com", "hotmail.es"],
    "Sweden": ["gmail.com", "telia.com"],
}

# country: [(name, domain, employees, industry)]
COMPANIES = {
    "Germany": [
        ("Nordlicht Software GmbH", "nordlicht-software.de", 120, "Software"),
        ("Brückner Maschinenbau AG", "brueckner-maschinenbau.de", 5000, "Manufacturing"),
        ("Kaffeerösterei Hansen", "kaffee-hansen.de", 25, "Food & Beverage"),
        ("Datenwerk Analytics GmbH", "datenwerk-analytics.de", 45, "Software"),
        ("Sonnenfeld Energie GmbH", "sonnenfeld-energie.de", 800, "Energy"),
        ("Lindner & Vogt Steuerberatung", "lindner-vogt.de", 8, "Professional Services"),
        ("Möbelmanufaktur Krüger", "moebel-krueger.de", 60, "Retail"),
        ("Praxiswolke GmbH", "praxiswolke.de", 30, "Healthcare"),
        ("Flinkpost Logistik GmbH", "flinkpost-logistik.de", 1500, "Logistics"),
        ("Rheinwerk Digitalagentur", "rheinwerk-digital.de", 18, "Marketing Agency"),
    ],
    "Austria": [
        ("Alpenblick Hotels GmbH", "alpenblick-hotels.at", 350, "Hospitality"),
        ("Donauwerk IT Solutions", "donauwerk-it.at", 75, "IT Services"),
        ("Murtal Fintech Labs", "murtal-fintech.at", 22, "Financial Services"),
    ],
    "Switzerland": [
        ("Jurapräzision AG", "jurapraezision.ch", 900, "Manufacturing"),
        ("Limmat Capital Partners", "limmat-capital.ch", 40, "Financial Services"),
        ("Seeklinik Digital AG", "seeklinik-digital.ch", 200, "Healthcare"),
        ("Léman Software SA", "leman-software.ch", 35, "Software"),
    ],
    "United States": [
        ("Brightpath Analytics Inc.", "brightpath-analytics.com", 250, "Software"),
        ("Cobalt Ridge Logistics", "cobaltridge-logistics.com", 5000, "Logistics"),
        ("Maplestone Health", "maplestonehealth.com", 1200, "Healthcare"),
        ("Quillstack", "quillstack.io", 12, "Software"),
        ("Redwood Trail Outfitters", "redwoodtrail-outfitters.com", 400, "Retail"),
        ("Summit Ledger", "summitledger.io", 85, "Financial Services"),
        ("Brightwater EdTech", "brightwater-edtech.com", 60, "Education"),
    ],
    "United Kingdom": [
        ("Thameside Consulting Ltd", "thameside-consulting.co.uk", 45, "Professional Services"),
        ("Greenleaf Grocers", "greenleaf-grocers.co.uk", 800, "Retail"),
        ("Kestrel Cloud Ltd", "kestrelcloud.co.uk", 150, "Software"),
        ("Pennine Media", "pennine-media.co.uk", 25, "Media"),
    ],
    "France": [
        ("Atelier Lumière SAS", "atelier-lumiere.fr", 15, "Design"),
        ("Vigneron Logistique", "vigneron-logistique.fr", 600, "Logistics"),
        ("Datapôle SAS", "datapole-sas.fr", 90, "Software"),
    ],
    "Netherlands": [
        ("Grachtenhuis Software BV", "grachtenhuis-software.nl", 55, "Software"),
        ("Polderkracht Energie", "polderkracht.nl", 300, "Energy"),
    ],
    "Spain": [("Solmar Turismo SL", "solmar-turismo.es", 140, "Hospitality")],
    "Sweden": [("Fjällskog AB", "fjallskog.se", 70, "Software")],
}

B2B_TITLES = [
    ("CEO", 4),
    ("Founder", 2),
    ("CTO", 3),
    ("CFO", 1),
    ("VP Marketing", 3),
    ("Head of Sales", 3),
    ("Head of Growth", 2),
    ("Marketing Director", 2),
    ("Sales Director", 1),
    ("Marketing Manager", 8),
    ("Marketing Operations Manager", 3),
    ("Content Marketing Manager", 3),
    ("Sales Development Representative", 4),
    ("Account Executive", 4),
    ("Product Manager", 3),
    ("Software Engineer", 6),
    ("Data Analyst", 2),
    ("Operations Manager", 2),
]
B2C_TITLES = [
    ("Student", 4),
    ("Freelancer", 4),
    ("Designer", 2),
    ("Consultant", 2),
    ("Teacher", 1),
    ("Photographer", 1),
    ("", 3),
]
B2C_INDUSTRIES = {
    "Student": ["Education"],
    "Teacher": ["Education"],
    "Freelancer": ["Design", "Software", "Media"],
    "Designer": ["Design"],
    "Consultant": ["Consulting"],
    "Photographer": ["Media"],
    "": [""],
}
TAG_CHANCES = [("webinar-2026", 0.15), ("ebook-lead-scoring", 0.12), ("conference-2025", 0.05)]
PROJECTS = ["Newsletter", "Onboarding emails", "Q3 launch", "Webinar follow-up", "Trial nurture"]

# How likely a lead is to buy, by who they are (as a B2B product's history would
# show): decision makers far more than managers, individual contributors rarely,
# students and freelancers hardly ever. Multiplied by the company's size factor
# and the source's, it is the chance that the lead becomes an opportunity.
DECISION_MAKER_WORDS = ("CEO", "Founder", "CTO", "CFO", "VP", "Head of", "Director", "Chief")
MANAGER_WORDS = ("Manager",)
BUYING_POWER = {"decision maker": 3.0, "manager": 1.4, "individual": 0.35, "consumer": 0.1}
OPPORTUNITY_BASE = 0.17
# MQLs that went no further, and disqualified leads, drawn for the rest.
MQL_BASE = 0.12
# Chance that an opportunity is won, by buying power.
WIN_CHANCE = {"decision maker": 0.68, "manager": 0.5, "individual": 0.35, "consumer": 0.3}
LOST_REASONS = [
    ("Chose a competitor", 4),
    ("No budget this year", 3),
    ("No decision made", 2),
    ("Too expensive", 2),
    ("Missing integration", 1),
]
PLANS = [("Starter", 3), ("Team", 4), ("Business", 2)]

# source, weight, how likely its leads buy (a bought fair list is colder than
# people who searched for the product), details
SOURCES = [
    (
        LeadSource.ORGANIC,
        45,
        1.1,
        ["google.com", "duckduckgo.com", "bing.com", "blog: lead-scoring-without-guesswork"],
    ),
    (
        LeadSource.PAID,
        35,
        0.9,
        ["google-ads: lead-scoring-2026", "linkedin-ads: b2b-marketing", "capterra: listing"],
    ),
    (LeadSource.EVENT, 20, 0.6, ["Import: trade fair DMEXCO 2026 (dmexco-2026-scans.csv)"]),
]


def buying_power(title: str, size: int | None) -> str:
    """Who the lead is, as far as buying goes."""
    if size is None or size <= 1:
        return "consumer"
    if any(word in title for word in DECISION_MAKER_WORDS):
        return "decision maker"
    if any(word in title for word in MANAGER_WORDS):
        return "manager"
    return "individual"


def size_factor(size: int | None) -> float:
    """Companies of 50 to 1,000 people buy most; tiny and huge ones less."""
    if size is None or size <= 1:
        return 0.5
    if size < 25:
        return 0.6
    if size < 50:
        return 1.0
    if size <= 1000:
        return 1.5
    return 0.9


# Chance that a lead of this stage uses the product (has an app user id).
APP_USER_CHANCE = {
    Stage.SUBSCRIBER: 0.1,
    Stage.LEAD: 0.3,
    Stage.MQL: 0.6,
    Stage.SQL: 0.7,
    Stage.OPPORTUNITY: 0.8,
    Stage.CUSTOMER: 0.95,
    Stage.LOST: 0.5,
    Stage.DISQUALIFIED: 0.2,
}
# Sales owns the leads furthest down the funnel.
OWNER_RANK = {
    Stage.OPPORTUNITY: 3.5,
    Stage.SQL: 3,
    Stage.CUSTOMER: 3,
    Stage.LOST: 2.5,
    Stage.MQL: 2,
    Stage.LEAD: 1,
    Stage.DISQUALIFIED: 0.5,
    Stage.SUBSCRIBER: 0,
}
# (dormant, light, medium, heavy) weights per stage
ACTIVITY_WEIGHTS = {
    Stage.SUBSCRIBER: (30, 45, 20, 5),
    Stage.LEAD: (15, 45, 30, 10),
    Stage.MQL: (5, 25, 45, 25),
    Stage.SQL: (0, 15, 45, 40),
    Stage.OPPORTUNITY: (0, 10, 40, 50),
    Stage.CUSTOMER: (0, 10, 40, 50),
    Stage.LOST: (5, 35, 45, 15),
    Stage.DISQUALIFIED: (30, 50, 20, 0),
}
ACTIVITY_EVENTS = ((0, 0), (1, 12), (13, 40), (41, 80))

# name, subject, link path
CAMPAIGNS = [
    ("Welcome 1/3", "Welcome to Leadflow", "/docs/quickstart"),
    ("Welcome 2/3", "Score your first leads in ten minutes", "/features/lead-scoring"),
    ("Welcome 3/3", "Your first automation flow", "/features/flows"),
    ("Monthly newsletter", "What's new in marketing automation", "/blog/from-mql-to-sql"),
    (
        "Webinar invitation",
        "Webinar: lead scoring that sales trusts",
        "/webinars/lead-scoring-2026",
    ),
    ("Webinar recording", "The recording you asked for", "/webinars/lead-scoring-2026"),
    ("Case study", "How Nordlicht doubled demo bookings", "/customers/nordlicht"),
    ("Product update", "New: the segment builder", "/blog/segment-builder"),
    ("Pricing follow-up", "Questions about plans?", "/pricing"),
]
TRIAL_CAMPAIGNS = [
    ("Trial day 1", "Create your first project", "/docs/quickstart"),
    ("Trial day 3", "Invite your team", "/docs/teams"),
    ("Trial ending", "Your trial ends in 3 days", "/pricing"),
]

# title, path, weight
PAGES = [
    ("Home", "/", 10),
    # Rarely by chance: buyers look at the price (_pricing_visits).
    ("Pricing", "/pricing", 2),
    ("Features", "/features", 7),
    ("Lead scoring", "/features/lead-scoring", 4),
    ("Automation flows", "/features/flows", 4),
    ("Integrations", "/integrations", 3),
    ("Customers", "/customers", 2),
    ("Book a demo", "/demo", 2),
    ("Lead scoring without the guesswork", "/blog/lead-scoring-without-guesswork", 4),
    ("Self-hosting your marketing automation", "/blog/self-hosting-marketing-automation", 3),
    ("GDPR-friendly email tracking", "/blog/gdpr-friendly-email-tracking", 3),
    ("From MQL to SQL", "/blog/from-mql-to-sql", 2),
    ("Quickstart", "/docs/quickstart", 3),
    ("Tracking API", "/docs/tracking-api", 2),
    ("Segment integration", "/docs/integrations/segment", 2),
    ("Scoring rules", "/docs/scoring", 2),
]
REFERRERS = [
    "",
    "",
    "https://www.google.com/",
    "https://www.linkedin.com/",
    "https://duckduckgo.com/",
    "https://news.ycombinator.com/",
]

# name, weight; "Signed up for trial" and "Upgraded plan" happen once, placed apart.
# Named as the app activity template's triggers name them, where it has one.
APP_ACTIONS = [
    ("Logged in", 6),
    ("Created project", 4),
    ("Created flow", 3),
    ("Invited a teammate", 2),
    ("Imported contacts", 2),
    ("Published flow", 1),
    ("Connected integration", 1),
    ("Booked a call", 1),
]
INTEGRATIONS = ["Segment", "Stripe", "HubSpot", "Slack", "Webhooks"]

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class DemoEvent:
    ago: float  # seconds before now
    type: str
    name: str
    properties: dict[str, Any]


@dataclass
class DemoLead:
    email: str
    first_name: str
    last_name: str
    job_title: str
    company_name: str
    company_size: int | None
    industry: str
    country: str
    city: str
    stage: str
    tags: list[str]
    unsubscribed: bool
    external_id: str | None
    owner_rank: float
    created_ago: float
    source: str = ""
    source_detail: str = ""
    funnel: Funnel | None = None
    events: list[DemoEvent] = field(default_factory=list)


@dataclass
class Funnel:
    """How far a lead went and when (seconds before now), and its deal if it had one."""

    stage: str
    mql_ago: float | None = None
    sql_ago: float | None = None
    opportunity_ago: float | None = None
    closed_ago: float | None = None
    disqualified_ago: float | None = None
    value: int | None = None
    plan: str = ""
    lost_reason: str = ""

    @property
    def in_market(self) -> bool:
        """Still being worked: looking at prices these weeks."""
        return self.stage in (Stage.MQL, Stage.SQL, Stage.OPPORTUNITY)


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _ascii(text: str) -> str:
    text = text.lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in text if c.isalnum())


def _lead_specs(rng: random.Random) -> list[DemoLead]:
    """The demo leads with their histories; the same list for the same ``rng`` seed."""
    leads: list[DemoLead] = []
    taken: set[str] = set()
    for _ in range(LEAD_COUNT):
        b2b = rng.random() < 0.7
        size: int | None
        if b2b:
            country = _weighted(rng, COUNTRY_WEIGHTS)
            company, domain, size, industry = rng.choice(COMPANIES[country])
            places = [place for place in PLACES if place[0] == country]
        else:
            places = PLACES
        country, _, language, cities = _weighted(rng, [(place, place[1]) for place in places])
        city = rng.choice(_words(cities))
        first = rng.choice(FIRST_NAMES[language])
        last = rng.choice(LAST_NAMES[language])
        given, family = _ascii(first), _ascii(last)
        if b2b:
            local, title = _work_mailbox_and_title(rng, given, family, country=country, size=size)
        else:
            local = rng.choice(
                [
                    f"{given}.{family}",
                    f"{given}{family}",
                    f"{given}.{family}{rng.randint(70, 99)}",
                    f"{given[0]}.{family}",
                ]
            )
            domain = rng.choice(FREE_MAIL[country])
            title = _weighted(rng, B2C_TITLES)
            freelancer = title == "Freelancer"
            company = "Self-employed" if freelancer else ""
            size = 1 if freelancer else None
            industry = rng.choice(B2C_INDUSTRIES[title])
        email = _demo_email(local, domain, taken)
        source, _, source_buys, details = _weighted(rng, [(row, row[1]) for row in SOURCES])
        # Skewed towards the start of the window: most leads have been around a while.
        start_ago = max(2.0, HISTORY_DAYS * rng.random() ** 0.7) * DAY
        funnel = _funnel(
            rng, power=buying_power(title, size), size=size, buys=source_buys, start_ago=start_ago
        )
        stage = funnel.stage
        app_user = rng.random() < APP_USER_CHANCE[Stage(stage)]
        unsubscribed = rng.random() < (0.02 if funnel.in_market else 0.06)
        tags = _demo_tags(rng, unsubscribed=unsubscribed, app_user=app_user, b2b=b2b, stage=stage)
        lead = DemoLead(
            email=email,
            first_name=first,
            last_name=last,
            job_title=title,
            company_name=company,
            company_size=size,
            industry=industry,
            country=country,
            city=city,
            stage=stage,
            tags=tags,
            unsubscribed=unsubscribed,
            external_id=f"usr_{rng.getrandbits(48):012x}" if app_user else None,
            owner_rank=OWNER_RANK[Stage(stage)] - (0 if b2b else 2) + rng.random(),
            created_ago=start_ago + rng.uniform(60, HOUR),
            source=source,
            source_detail=rng.choice(details),
            funnel=funnel,
        )
        lead.events = _history(rng, lead, start_ago=start_ago)
        leads.append(lead)
    return leads


def _funnel(
    rng: random.Random, *, power: str, size: int | None, buys: float, start_ago: float
) -> Funnel:
    """Where the lead got to: an opportunity (won, lost or open) with a chance from
    who they are, their company's size and their source; else an MQL or SQL that
    went no further, a disqualified lead, or a lead still being nurtured."""
    chance = min(0.9, OPPORTUNITY_BASE * BUYING_POWER[power] * size_factor(size) * buys)
    if rng.random() < chance:
        mql = start_ago - rng.uniform(0.05, 0.3) * start_ago
        sql = _after(rng, mql, 1, 10)
        opportunity = _after(rng, sql, 2, 14)
        closed = opportunity - rng.uniform(10, 60) * DAY
        funnel = Funnel(
            Stage.OPPORTUNITY,
            mql_ago=mql,
            sql_ago=sql,
            opportunity_ago=opportunity,
            value=_deal_value(rng, size),
            plan=_weighted(rng, PLANS),
        )
        if closed < DAY:
            return funnel
        funnel.closed_ago = closed
        if rng.random() < WIN_CHANCE[power]:
            funnel.stage = Stage.CUSTOMER
        else:
            funnel.stage = Stage.LOST
            funnel.lost_reason = _weighted(rng, LOST_REASONS)
        return funnel
    if rng.random() < (0.2 if power == "consumer" else 0.04):
        return Funnel(Stage.DISQUALIFIED, disqualified_ago=_after(rng, start_ago, 0, 20))
    # Marketing hands sales no consumers: without a company there is nobody to sell to.
    mql_chance = min(0.6, MQL_BASE * BUYING_POWER[power] * size_factor(size) * buys + 0.04)
    if power != "consumer" and rng.random() < mql_chance:
        # Recent: an MQL that has not gone further is still being worked on.
        mql = min(start_ago, rng.uniform(DAY, 40 * DAY))
        if rng.random() < 0.35:
            return Funnel(Stage.SQL, mql_ago=mql, sql_ago=_after(rng, mql, 1, 7))
        return Funnel(Stage.MQL, mql_ago=mql)
    return Funnel(Stage.LEAD if rng.random() < 0.55 else Stage.SUBSCRIBER)


def _after(rng: random.Random, ago: float, low_days: float, high_days: float) -> float:
    """A moment ``low_days`` to ``high_days`` after ``ago``, and not in the last hour."""
    return max(ago - rng.uniform(low_days, high_days) * DAY, HOUR)


def _deal_value(rng: random.Random, size: int | None) -> int:
    """A yearly contract in EUR, larger for larger companies, in steps of 500."""
    low, high = 2_000, 8_000
    if size is not None and size >= 1000:
        low, high = 40_000, 120_000
    elif size is not None and size >= 200:
        low, high = 20_000, 60_000
    elif size is not None and size >= 25:
        low, high = 8_000, 25_000
    return round(rng.uniform(low, high) / 500) * 500


def _work_mailbox_and_title(
    rng: random.Random, given: str, family: str, *, country: str, size: int | None
) -> tuple[str, str]:
    """A business lead's mailbox name (by the company's habits) and job title."""
    if size is not None and size <= 25:
        local = rng.choice([given, f"{given}.{family}"])
    elif country == "United States":
        local = f"{given[0]}{family}"
    else:
        local = f"{given}.{family}"
    title = _weighted(rng, B2B_TITLES)
    if title == "Founder" and size is not None and size > 200:
        title = "CEO"
    return local, title


def _demo_email(local: str, domain: str, taken: set[str]) -> str:
    """An address no other demo lead has, on a domain that cannot receive mail."""
    # Demo addresses must never reach a real mailbox, whatever mail backend an
    # install has: every domain is moved under the reserved .example TLD.
    domain = domain.rsplit(".", 1)[0] + ".example"
    email = f"{local}@{domain}"
    suffix = 2
    while email in taken:
        email = f"{local}{suffix}@{domain}"
        suffix += 1
    taken.add(email)
    return email


def _demo_tags(
    rng: random.Random, *, unsubscribed: bool, app_user: bool, b2b: bool, stage: str
) -> list[str]:
    tags = []
    if not unsubscribed and rng.random() < 0.6:
        tags.append("newsletter")
    for name, chance in TAG_CHANCES:
        if rng.random() < chance:
            tags.append(name)
    if app_user and rng.random() < 0.7:
        tags.append("trial")
    if app_user and rng.random() < 0.1:
        tags.append("beta")
    if b2b and rng.random() < 0.05:
        tags.append("partner")
    if stage == Stage.CUSTOMER and rng.random() < 0.3:
        tags.append("vip")
    return tags


def _page(ago: float, path: str, title: str, referrer: str) -> DemoEvent:
    properties = {"url": f"{SITE}{path}", "path": path, "title": f"{title} | Leadflow"}
    if referrer:
        properties["referrer"] = referrer
    return DemoEvent(ago, "page", title, properties)


def _history(rng: random.Random, lead: DemoLead, *, start_ago: float) -> list[DemoEvent]:
    """The lead's activity from ``start_ago`` until it went quiet, oldest first.

    Events come in episodes (an email, a website visit, a product session) so that
    an open follows its delivery, a click its open and a product event the sign-up.
    """
    level = rng.choices(range(4), weights=ACTIVITY_WEIGHTS[Stage(lead.stage)])[0]
    budget = rng.randint(*ACTIVITY_EVENTS[level])
    if lead.external_id:
        budget = max(budget, 2)
    # Some leads went quiet weeks ago; the busiest, and those in the market now,
    # are active until today; a lost deal goes quiet soon after it is lost.
    funnel = lead.funnel or Funnel(lead.stage)
    quiet = level < 3 and rng.random() >= 0.55 and not funnel.in_market
    end_ago = max(rng.uniform(0, start_ago * 0.9) if quiet else 0.0, 600.0)
    if funnel.stage == Stage.LOST and funnel.closed_ago is not None:
        end_ago = max(end_ago, _after(rng, funnel.closed_ago, 0, 10))

    events: list[DemoEvent] = []
    signup_ago = start_ago
    if lead.external_id:
        signup_ago = _signup(rng, lead, events, start_ago=start_ago, end_ago=end_ago)
    # Mail stops at the unsubscribe.
    mail_end_ago = end_ago
    if lead.unsubscribed:
        mail_end_ago = rng.uniform(end_ago, start_ago)
        campaign = rng.choice(CAMPAIGNS)[0]
        props = {"email": lead.email, "campaign": campaign}
        events.append(DemoEvent(mail_end_ago, "email.unsubscribed", campaign, props))
    elif funnel.opportunity_ago is None and rng.random() < 0.04:
        # The address stopped taking mail (its owner left the company).
        mail_end_ago = rng.uniform(end_ago, start_ago)
        campaign = rng.choice(CAMPAIGNS)[0]
        props = {"email": lead.email, "campaign": campaign, "provider_event": "bounced"}
        events.append(DemoEvent(mail_end_ago, "email.bounced", campaign, props))

    kinds = [("email", 45.0), ("web", 35.0), ("app", 20.0 if lead.external_id else 0.0)]
    mail = _Mailing(
        campaigns=CAMPAIGNS + (TRIAL_CAMPAIGNS if lead.external_id else []),
        engaged=(0.2, 0.35, 0.5, 0.65)[level],
        start_ago=start_ago,
        signup_ago=signup_ago,
        end_ago=mail_end_ago,
    )
    message = 0
    while len(events) < budget:
        kind = _weighted(rng, kinds)
        if kind == "email":
            message += 1
            _email_episode(rng, lead, events, mail, message=message)
        elif kind == "web":
            _web_visit(rng, events, ago=rng.uniform(end_ago, start_ago))
        else:
            _app_session(
                rng, events, ago=rng.uniform(end_ago, signup_ago), buyer=funnel.mql_ago is not None
            )
    # The budget is checked per episode; cutting the last one keeps its first steps.
    events = events[:budget]
    events += _pricing_visits(rng, funnel, start_ago=start_ago, end_ago=end_ago)
    events.sort(key=lambda event: -event.ago)
    return events


def _pricing_visits(
    rng: random.Random, funnel: Funnel, *, start_ago: float, end_ago: float
) -> list[DemoEvent]:
    """Buyers look at the price: leads in the market did so these weeks, those who
    had a deal before it opened; few others ever do."""
    if funnel.in_market:
        count, first, last = rng.randint(1, 3), min(start_ago, 25 * DAY), HOUR
    elif funnel.opportunity_ago is not None:
        count, first, last = rng.randint(1, 4), start_ago, funnel.opportunity_ago
    else:
        count, first, last = (1 if rng.random() < 0.12 else 0), start_ago, end_ago
    return [
        _page(rng.uniform(last, first), "/pricing", "Pricing", rng.choice(REFERRERS))
        for _ in range(count)
    ]


def _later(rng: random.Random, ago: float, low: float, high: float) -> float:
    """A moment between ``low`` and ``high`` seconds after ``ago``, and not in the
    last minute."""
    return max(ago - rng.uniform(low, high), 60.0)


def _signup(
    rng: random.Random,
    lead: DemoLead,
    events: list[DemoEvent],
    *,
    start_ago: float,
    end_ago: float,
) -> float:
    """A product user's sign-up, first project and upgrade; returns when it signed up."""
    signup_ago = rng.uniform(start_ago - DAY / 2, start_ago)
    events.append(DemoEvent(signup_ago, "track", "Signed up for trial", {"plan": "trial"}))
    if rng.random() < 0.7:
        project = {"project": rng.choice(PROJECTS)}
        events.append(
            DemoEvent(_later(rng, signup_ago, 120, HOUR), "track", "Created project", project)
        )
    if lead.stage == Stage.CUSTOMER:
        plan = {"plan": rng.choice(["starter", "team", "business"])}
        ago = rng.uniform(end_ago, signup_ago)
        events.append(DemoEvent(ago, "track", "Upgraded plan", plan))
    return signup_ago


@dataclass(frozen=True)
class _Mailing:
    """What a lead's mail episodes draw from, and the window they fall in."""

    campaigns: list[tuple[str, str, str]]
    engaged: float
    start_ago: float
    signup_ago: float
    end_ago: float


def _email_episode(
    rng: random.Random,
    lead: DemoLead,
    events: list[DemoEvent],
    mail: _Mailing,
    *,
    message: int,
) -> None:
    """One email delivered and, if the lead engages, opened, clicked, replied to."""
    name, subject, path = rng.choice(mail.campaigns)
    # Onboarding mail goes out in the first two weeks, the rest any time.
    first = mail.signup_ago if name.startswith("Trial") else mail.start_ago
    if name.startswith(("Welcome", "Trial")):
        ago = rng.uniform(max(first - 14 * DAY, mail.end_ago), first)
    else:
        ago = rng.uniform(mail.end_ago, mail.start_ago)
    mailbox = lead.email.split("@")[0]
    props = {
        "email": lead.email,
        "campaign": name,
        "subject": subject,
        "message_id": f"<{mailbox}.{message}@mail.leadflow.example>",
    }
    events.append(DemoEvent(ago, "email.delivered", name, props))
    if rng.random() >= mail.engaged:
        return
    ago = _later(rng, ago, 300, 2 * DAY)
    events.append(DemoEvent(ago, "email.opened", name, props))
    if rng.random() < 0.4:
        ago = _later(rng, ago, 10, 600)
        slug = name.lower().replace(" ", "-").replace("/", "-")
        url = f"{SITE}{path}?utm_source=leadflow&utm_medium=email&utm_campaign={slug}"
        events.append(DemoEvent(ago, "email.clicked", name, {**props, "url": url}))
        if rng.random() < 0.7:
            title = next((t for t, p, _ in PAGES if p == path), subject)
            events.append(_page(_later(rng, ago, 2, 20), path, title, ""))
    if rng.random() < (0.08 if lead.company_size and lead.company_size > 1 else 0.02):
        reply = {**props, "message_id": f"<re.{mailbox}.{message}@{lead.email}>"}
        events.append(DemoEvent(_later(rng, ago, 30 * 60, DAY), "email.replied", name, reply))


def _web_visit(rng: random.Random, events: list[DemoEvent], *, ago: float) -> None:
    """A visit of one to five pages, each referring the next."""
    referrer = rng.choice(REFERRERS)
    for _ in range(rng.randint(1, 5)):
        title, path, _weight = rng.choices(PAGES, weights=[p[2] for p in PAGES])[0]
        events.append(_page(ago, path, title, referrer))
        referrer = f"{SITE}{path}"
        ago = _later(rng, ago, 15, 240)


def _app_session(rng: random.Random, events: list[DemoEvent], *, ago: float, buyer: bool) -> None:
    """One to three things a product user did in one sitting; only a lead on its
    way to buying books a call with sales (and now and then cancels it)."""
    for _ in range(rng.randint(1, 3)):
        action = _weighted(rng, APP_ACTIONS)
        if action == "Booked a call" and not buyer:
            action = "Logged in"
        events.append(DemoEvent(ago, "track", action, _app_action_properties(rng, action)))
        if action == "Booked a call" and rng.random() < 0.25:
            cancelled = _later(rng, ago, HOUR, 2 * DAY)
            calendar = {"calendar": "sales-demo"}
            events.append(DemoEvent(cancelled, "track", "Meeting cancelled", calendar))
        ago = _later(rng, ago, 30, 20 * 60)


def _app_action_properties(rng: random.Random, action: str) -> dict[str, Any]:
    if action in ("Created project", "Created flow"):
        return {"project": rng.choice(PROJECTS)}
    if action == "Invited a teammate":
        return {"role": rng.choice(["marketer", "sales", "admin"])}
    if action == "Imported contacts":
        return {"rows": rng.choice([48, 250, 1200, 5000])}
    if action == "Connected integration":
        return {"integration": rng.choice(INTEGRATIONS)}
    if action == "Booked a call":
        return {"calendar": "sales-demo"}
    return {}


def _users() -> None:
    """Create the demo users that are missing; existing users keep their password
    and flags and only gain their role's group."""
    user_model = get_user_model()
    for username, role, first, last in USERS:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{first.lower()}.{last.lower()}@{USER_DOMAIN}",
                is_staff=role == Role.ADMIN,
                is_superuser=role == Role.ADMIN,
            )
            user.set_password(DEMO_PASSWORD)
            user.save()
        user.groups.add(Group.objects.get(name=role))


# A sales rep's day: follow-ups on their hottest leads, some overdue, some due
# today, some later (hours from now; negative is overdue). Keyed, so a second
# load adds none.
REP_TASKS = [
    ("Call back about the pricing question", -26, "high"),
    ("Send the case study they asked for", -3, "normal"),
    ("Book a demo with the team", 2, "urgent"),
    ("Follow up on the trial", 5, "normal"),
    ("Check in after the webinar", 30, "low"),
    ("Prepare the proposal", 75, "high"),
]


def _rep_tasks(now: datetime) -> None:
    """Open tasks for the demo sales rep on their highest-scoring leads."""
    rep = get_user_model().objects.filter(username="sales").first()
    if rep is None:
        return
    leads = list(
        Lead.objects.filter(owner=rep)
        .exclude(stage__in=CLOSED_STAGES)
        .order_by("-score", "id")[: len(REP_TASKS)]
    )
    for n, (lead, (title, hours, priority)) in enumerate(zip(leads, REP_TASKS, strict=False)):
        Task.objects.get_or_create(
            source_key=f"demo:rep-task:{n}",
            defaults={
                "lead": lead,
                "assignee": rep,
                "title": title,
                "due_at": now + timedelta(hours=hours),
                "priority": priority,
            },
        )


def _apply(specs: list[DemoLead], now: datetime) -> tuple[int, int]:
    """Insert the leads and events that are missing. Returns (new leads, new events)."""
    emails = [spec.email for spec in specs]
    existing = set(Lead.objects.filter(email__in=emails).values_list("email", flat=True))
    sales_id = get_user_model().objects.values_list("pk", flat=True).get(username="sales")
    owned = {spec.email for spec in sorted(specs, key=lambda s: -s.owner_rank)[:SALES_OWNED]}
    new_specs = [spec for spec in specs if spec.email not in existing]
    Lead.objects.bulk_create(
        [
            Lead(
                email=spec.email,
                external_id=spec.external_id,
                first_name=spec.first_name,
                last_name=spec.last_name,
                job_title=spec.job_title,
                company_name=spec.company_name,
                company_size=spec.company_size,
                industry=spec.industry,
                country=spec.country,
                city=spec.city,
                stage=spec.stage,
                unsubscribed=spec.unsubscribed,
                owner_id=sales_id if spec.email in owned else None,
                source=spec.source,
                source_detail=spec.source_detail,
                **_stage_dates(spec, now),
            )
            for spec in new_specs
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    lead_ids = dict(Lead.objects.filter(email__in=emails).values_list("email", "pk"))
    new_ids = {lead_ids[s.email]: s for s in new_specs if s.email in lead_ids}
    # A lead with one of these addresses that a person entered is not ours to
    # fill with invented history.
    demo_ids = set(new_ids) | set(
        Event.objects.filter(source=SOURCE, lead_id__in=list(lead_ids.values()))
        .values_list("lead_id", flat=True)
        .distinct()
    )

    # auto_now_add ignores given values on insert; bulk_update does not.
    backdated = []
    for pk, spec in new_ids.items():
        backdated.append(Lead(pk=pk, created_at=now - timedelta(seconds=spec.created_ago)))
    Lead.objects.bulk_update(backdated, ["created_at"], batch_size=1000)

    tag_names = sorted({name for spec in new_ids.values() for name in spec.tags})
    Tag.objects.bulk_create([Tag(name=name) for name in tag_names], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(name__in=tag_names).values_list("name", "pk"))
    through = Lead.tags.through
    through.objects.bulk_create(
        [
            through(lead_id=pk, tag_id=tag_ids[name])
            for pk, spec in new_ids.items()
            for name in spec.tags
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )

    Opportunity.objects.bulk_create(
        [
            _opportunity(pk, spec, now, sales_id)
            for pk, spec in new_ids.items()
            if spec.funnel is not None and spec.funnel.opportunity_ago is not None
        ],
        ignore_conflicts=True,
    )

    events = []
    for spec in specs:
        lead_id = lead_ids.get(spec.email)
        if lead_id not in demo_ids:
            continue
        created = now - timedelta(seconds=spec.created_ago)
        # What the app recorded when the lead was made: fit scoring starts on it.
        events.append(
            Event(
                lead_id=lead_id,
                type="lead.created",
                properties={"source": spec.source},
                occurred_at=created,
                received_at=created,
                processed_at=created,
                source=SOURCE,
                idempotency_key=f"demo:{spec.email}:created",
            )
        )
        for n, demo in enumerate(spec.events):
            at = now - timedelta(seconds=demo.ago)
            events.append(
                Event(
                    lead_id=lead_id,
                    type=demo.type,
                    name=demo.name,
                    properties=demo.properties,
                    # As a tracking client or an email provider would have sent it.
                    user_id=(spec.external_id or "") if demo.type in ("track", "page") else "",
                    email=spec.email if demo.type.startswith("email.") else "",
                    occurred_at=at,
                    received_at=at,
                    processed_at=at,
                    source=SOURCE,
                    idempotency_key=f"demo:{spec.email}:{n}",
                )
            )
    before = Event.objects.filter(source=SOURCE).count()
    with transaction.atomic():
        Event.objects.bulk_create(
            event_keys_claim(events=events), ignore_conflicts=True, batch_size=1000
        )
    added = Event.objects.filter(source=SOURCE).count() - before

    latest = (
        Event.objects.filter(lead_id__in=demo_ids, type__in=LEAD_ACTIVITY_TYPES)
        .values("lead_id")
        .annotate(at=Max("occurred_at"))
    )
    current = dict(Lead.objects.filter(pk__in=demo_ids).values_list("pk", "last_activity_at"))
    touched = [
        Lead(pk=row["lead_id"], last_activity_at=row["at"])
        for row in latest
        if current.get(row["lead_id"]) is None or current[row["lead_id"]] < row["at"]
    ]
    Lead.objects.bulk_update(touched, ["last_activity_at"], batch_size=1000)
    return len(new_ids), added


def _stage_dates(spec: DemoLead, now: datetime) -> dict[str, datetime | None]:
    """When the lead reached each stage of its funnel."""
    funnel = spec.funnel or Funnel(spec.stage)

    def at(ago: float | None) -> datetime | None:
        return None if ago is None else now - timedelta(seconds=ago)

    won = funnel.stage == Stage.CUSTOMER
    return {
        "mql_at": at(funnel.mql_ago),
        "sql_at": at(funnel.sql_ago),
        "opportunity_at": at(funnel.opportunity_ago),
        "customer_at": at(funnel.closed_ago) if won else None,
        "lost_at": at(funnel.closed_ago) if funnel.stage == Stage.LOST else None,
        "disqualified_at": at(funnel.disqualified_ago),
    }


def _opportunity(lead_id: int, spec: DemoLead, now: datetime, sales_id: int) -> Opportunity:
    funnel = spec.funnel
    assert funnel is not None
    assert funnel.opportunity_ago is not None
    status = {
        Stage.CUSTOMER: OpportunityStatus.WON,
        Stage.LOST: OpportunityStatus.LOST,
    }.get(Stage(funnel.stage), OpportunityStatus.OPEN)
    closed = funnel.closed_ago
    return Opportunity(
        lead_id=lead_id,
        name=f"{spec.company_name or spec.last_name}: Leadflow {funnel.plan}",
        value=Decimal(funnel.value or 0),
        currency="EUR",
        status=status,
        opened_at=now - timedelta(seconds=funnel.opportunity_ago),
        closed_at=None if closed is None else now - timedelta(seconds=closed),
        lost_reason=funnel.lost_reason,
        created_by_id=sales_id,
        source_key=f"demo:{spec.email}",
    )


TITLE_WORDS = ["CEO", "Founder", "Chief", "CTO", "VP", "Head", "Director"]
DEMO_SEGMENTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Active subscribers",
        "Subscribers and leads who opened an email in the last 30 days.",
        {
            "all": [
                {"field": "stage", "op": "in", "value": ["subscriber", "lead"]},
                {"field": "unsubscribed", "op": "is", "value": False},
                {"activity": "email.opened", "within_days": 30},
            ]
        },
    ),
    (
        "Visited pricing in last 30 days",
        "Looked at the pricing page at least once in the last 30 days.",
        {
            "all": [
                {
                    "activity": "page",
                    "where": {"url": {"op": "contains", "value": "/pricing"}},
                    "within_days": 30,
                }
            ]
        },
    ),
    (
        "Hot leads",
        "Score at or above the hot threshold (see the scoring settings).",
        {"all": [{"field": "grade", "op": "is", "value": "hot"}]},
    ),
    (
        "Dead-end: no opens in 60 days",
        "Mailed, but no email opened in the last 60 days.",
        {
            "all": [
                {"activity": "email.delivered"},
                {"activity": "email.opened", "within_days": 60, "count": {"op": "eq", "value": 0}},
            ]
        },
    ),
    (
        "Decision makers at companies of 25+",
        "Founders, C-level, VPs, heads and directors at companies of 25 people or more.",
        {
            "all": [
                {
                    "any": [
                        {"field": "job_title", "op": "contains", "value": word}
                        for word in TITLE_WORDS
                    ]
                },
                {"field": "company_size", "op": "gte", "value": 25},
            ]
        },
    ),
]


def _segments() -> int:
    """The demo segments, created once and filled now (a worker may not run yet)."""
    author = get_user_model().objects.filter(username="marketer").first()
    created = 0
    for name, description, tree in DEMO_SEGMENTS:
        segment = Segment.objects.filter(name=name).first()
        if segment is None:
            segment = segment_create(
                name=name, description=description, conditions=tree, created_by=author
            )
            created += 1
        segment_recompute(segment=segment)
    return created


DEMO_SENDER = ("Lena von Leadflow", "lena@leadflow.example", "hallo@leadflow.example")
DEMO_POSTAL_ADDRESS = "Leadflow GmbH\nFriedrichstraße 123\n10117 Berlin\nDeutschland"
DEMO_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Willkommen",
        "subject": 'Willkommen bei Leadflow, {{ first_name | default: "schön, dass Sie da sind" }}',
        "preheader": "Drei Schritte, mit denen Ihr Team in der ersten Woche startet",
        "kind": EmailKind.MARKETING,
        "blocks": [
            {"type": "heading", "text": 'Hallo {{ first_name | default: "und willkommen" }}!'},
            {
                "type": "text",
                "text": 'Schön, dass **{{ company_name | default: "Ihr Team" }}** Leadflow '
                "ausprobiert. Die meisten Teams fangen mit diesen drei Schritten an:",
            },
            {
                "type": "text",
                "text": "1. Leads importieren (CSV oder API)\n"
                "2. Ein Segment für Ihre besten Kontakte anlegen\n"
                "3. Einen Flow starten, der auf Besuche der Preisseite reagiert",
            },
            {"type": "button", "label": "Zum Dashboard", "url": f"{SITE}/app"},
            {"type": "divider"},
            {
                "type": "columns",
                "left": [
                    {"type": "heading", "text": "Segmente", "level": 2},
                    {
                        "type": "text",
                        "text": "Gruppieren Sie Leads danach, "
                        f"[was sie tun]({SITE}/docs/segments).",
                    },
                ],
                "right": [
                    {"type": "heading", "text": "Flows", "level": 2},
                    {
                        "type": "text",
                        "text": f"Reagieren Sie [in Minuten]({SITE}/docs/flows) darauf.",
                    },
                ],
            },
            {"type": "spacer", "height": 16},
            {
                "type": "text",
                "text": "Fragen? Antworten Sie einfach auf diese E-Mail.\n\n"
                'Viele Grüße\n{{ owner.first_name | default: "Lena" }} von Leadflow',
            },
        ],
    },
    {
        "name": "Pricing follow-up",
        "subject": '{{ first_name | default: "Hi" }}, questions about pricing?',
        "preheader": "A short note after your visit to our pricing page",
        "kind": EmailKind.MARKETING,
        "blocks": [
            {"type": "heading", "text": 'Hi {{ first_name | default: "there" }},'},
            {
                "type": "text",
                "text": "you had a look at our pricing recently. Teams the size of "
                '{{ company_name | default: "yours" }} usually start on **Growth**: '
                "unlimited flows, 10,000 leads and email sending included.",
            },
            {"type": "button", "label": "Compare the plans", "url": f"{SITE}/pricing"},
            {
                "type": "text",
                "text": 'Would a 20-minute call help? {{ owner.name | default: "Our team" }} '
                f"can walk you through it: [pick a time]({SITE}/demo).",
            },
            {"type": "divider"},
            {"type": "text", "text": "Best,\nThe Leadflow team"},
        ],
    },
]


def _emails(created_by: User | None) -> int:
    """A sender, the footer's postal address and two templates, each made once."""
    name, address, reply_to = DEMO_SENDER
    sender = Sender.objects.filter(address=address).first() or Sender.objects.create(
        name=name, address=address, reply_to=reply_to
    )
    if not email_settings_get().postal_address:
        email_settings_update(postal_address=DEMO_POSTAL_ADDRESS)
    created = 0
    for spec in DEMO_TEMPLATES:
        if EmailTemplate.objects.filter(name__iexact=spec["name"]).exists():
            continue
        template_create(sender=sender, created_by=created_by, **spec)
        created += 1
    return created


def _online_behaviour(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    return scoring_columns(
        [
            (
                "pricing",
                "page.visited",
                {"url": {"op": "contains", "value": "/pricing"}},
                10,
                "engagement",
                "Visited the pricing page",
            ),
            (
                "call",
                "app.event",
                {"event": "Booked a call"},
                20,
                "engagement",
                "Booked a call",
            ),
        ]
    )


def _demo_flows() -> list[FlowTemplate]:
    """The builder's templates, and two flows only the demo has: they rely on
    the demo's own events and segments. All are made the way the builder makes a
    flow from a template."""
    return [
        FLOW_TEMPLATES["b2b-fit"],
        FLOW_TEMPLATES["email-engagement"],
        FLOW_TEMPLATES["negative-signals"],
        FLOW_TEMPLATES["app-activity"],
        FlowTemplate(
            key="demo-online-behaviour",
            name="Online behaviour scoring",
            description="Looking at pricing and booking a call are buying signals.",
            build=_online_behaviour,
        ),
        FLOW_TEMPLATES["notify-sales-hot"],
    ]


# Demo flows made before the demo took the builder's templates, by template: a
# demo loaded then has its flow already, and a second one would give every hot
# lead two tasks (and send the history through all flows again).
FORMER_NAMES = {
    "notify-sales-hot": ("Hot lead: notify the owner",),
    # Fit came from a segment of decision makers before: both would count it twice.
    "b2b-fit": ("Decision maker fit",),
}


def _flows(*, replay: bool = True) -> int:
    """Publish the demo flows once, then run the last month of demo history
    through them, so profiles show scores with their reasons."""

    author = get_user_model().objects.filter(username="marketer").first()
    created = 0
    for template in _demo_flows():
        names = [str(template.name), *FORMER_NAMES.get(template.key, ())]
        if Flow.objects.filter(name__in=names).exists():
            continue
        flow = flow_create_from_template(template=template, created_by=author)
        flow_publish(flow=flow, user=author)
        created += 1
    if created and replay:
        _replay_history()
    return created


REPLAY_DAYS = 30


def _replay_history() -> None:

    # The flows went live a month ago: older activity happened before them. Fit
    # is scored for every lead, when it was created (the fit flow's trigger).
    since = timezone.now() - timedelta(days=REPLAY_DAYS)
    events = Event.objects.filter(
        Q(source=SOURCE, occurred_at__gte=since)
        | Q(source=SOURCE, type="lead.created")
        | Q(type="segment.entered")
    ).order_by("occurred_at", "id")
    leads = Lead.objects.in_bulk(set(events.values_list("lead_id", flat=True)))
    # One transaction, and no message per derived event: this is a batch job.
    # Read once for the whole replay, as the worker reads them once per batch
    # and event: the flows' subscriptions, each lead's waits (half the replay's
    # time when read for every event).
    with transaction.atomic(), derived_collected() as derived, processing_batch(), event_scope():
        for event in events.iterator(chunk_size=2000):
            lead = leads.get(event.lead_id or 0)
            if lead is not None:
                lead.refresh_from_db(fields=["score", "grade", "stage", "owner"])
                flows_on_event(event=event, lead=lead)
    # Score and grade changes, segment entries: what the worker would do next.
    with transaction.atomic():
        events_process(event_ids=derived)
    # The grade rule on every lead, as after a change of settings: fit and
    # engagement grades, and customers, lost and disqualified leads (their stage
    # loaded as it is, not reached by a change) no longer hot.
    with derived_collected() as regraded:
        grades_recompute(settings=scoring_settings())
    with transaction.atomic():
        events_process(event_ids=regraded)


class Command(BaseCommand):
    help = (
        "Load demo users (admin, marketer, sales; password 'leadflow'), about 300 leads "
        "and six months of their activity. Safe to run again: only what is missing is added."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-replay",
            action="store_true",
            help="Publish the demo flows without running the history through them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Everything random is drawn before the database is read, so the data does
        # not depend on what is already there.
        specs = _lead_specs(random.Random(SEED))
        now = timezone.now()
        with transaction.atomic():
            _users()
            new_leads, new_events = _apply(specs, now)
        new_segments = _segments()
        new_templates = _emails(get_user_model().objects.filter(username="marketer").first())
        new_flows = _flows(replay=not options["no_replay"])
        _rep_tasks(now)
        leads = Lead.objects.filter(email__in=[s.email for s in specs]).count()
        events = Event.objects.filter(source=SOURCE).count()
        self.stdout.write(
            f"Demo data: {leads} leads ({new_leads} new), {events} events ({new_events} new), "
            f"{len(DEMO_SEGMENTS)} segments ({new_segments} new), "
            f"{len(_demo_flows())} flows ({new_flows} new), "
            f"{len(DEMO_TEMPLATES)} email templates ({new_templates} new), "
            f"users {'/'.join(u[0] for u in USERS)} (password: {DEMO_PASSWORD})"
        )
