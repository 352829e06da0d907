"""A developer's facts told over eight weeks among coding chatter, and questions about them.

Each fact has a lexical question (shares its key words) and a paraphrase question (no content
word in common); some facts are later updated with a new value. Used by recall_quality.py and
the recall tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memproxy_cli.memory.backend import Turn

DAY = 86400.0
NOW = 2_000_000_000.0


@dataclass(frozen=True)
class Fact:
    key: str
    said: str
    lexical: str
    paraphrase: str
    update: str | None = None  # the same subject with a new value, told later
    update_question: str | None = None


FACTS = (
    Fact(
        "staging-port",
        "Our staging database listens on port 5433.",
        "Which port does the staging database listen on?",
        "Where do I connect to reach the pre-production Postgres?",
        "We moved the staging database to port 6543 this week.",
        "What port is the staging database on now?",
    ),
    Fact(
        "dog",
        "My dog is called Biscuit, she is a beagle.",
        "What is my dog called?",
        "What's the name of my pet?",
    ),
    Fact(
        "editor",
        "I write all my code in Neovim with the LazyVim setup.",
        "Which Neovim setup do I write code in?",
        "What text editing program do I prefer?",
        "I switched from Neovim to Zed for all my code.",
        "Which editor do I write my code in these days?",
    ),
    Fact(
        "deploy-day",
        "We never deploy to production on Fridays.",
        "Do we deploy to production on Fridays?",
        "Is shipping allowed at the end of the week?",
    ),
    Fact(
        "ci",
        "Our CI runs on Buildkite agents in our own AWS account.",
        "Where do our Buildkite CI agents run?",
        "Which service executes our automated checks on each push?",
        "CI moved off Buildkite: it runs on GitHub Actions now.",
        "What runs our CI now?",
    ),
    Fact(
        "coffee",
        "I drink my coffee black, no sugar.",
        "How do I drink my coffee?",
        "How do I take my morning espresso?",
    ),
    Fact(
        "timezone",
        "I work from Lisbon, so my timezone is WET.",
        "Which timezone do I work in from Lisbon?",
        "Where am I based geographically?",
        "I relocated from Lisbon to Berlin, my timezone is CET now.",
        "Which timezone am I in now?",
    ),
    Fact(
        "linter",
        "The team lints Python with ruff, line length 100.",
        "Which line length does ruff use for our Python?",
        "How many characters wide may source get before the checker complains?",
    ),
    Fact(
        "auth",
        "Login uses Keycloak as the OpenID Connect provider.",
        "Which OpenID Connect provider does login use?",
        "Who handles sign-in for users?",
    ),
    Fact(
        "cache",
        "Sessions are cached in Redis with a 15 minute TTL.",
        "What TTL do Redis cached sessions have?",
        "How long does a logged-in visitor stay remembered?",
        "We raised the Redis session TTL to 60 minutes.",
        "What is the Redis session TTL now?",
    ),
    Fact(
        "reviewer",
        "Priya reviews every pull request that touches billing.",
        "Who reviews pull requests that touch billing?",
        "Whose approval do invoice-related changes need?",
    ),
    Fact(
        "python",
        "The backend targets Python 3.11 only.",
        "Which Python version does the backend target?",
        "What interpreter release must the server code support?",
        "The backend now targets Python 3.13.",
        "Which Python version does the backend target now?",
    ),
    Fact(
        "frontend",
        "The frontend is built with SvelteKit and Tailwind.",
        "Which frameworks build the frontend, SvelteKit?",
        "What is the browser UI written in?",
    ),
    Fact(
        "queue",
        "Background jobs go through RabbitMQ with Celery workers.",
        "Which broker do Celery background jobs go through?",
        "How are asynchronous tasks dispatched?",
    ),
    Fact(
        "oncall",
        "Marco is on call for the payments service this month.",
        "Who is on call for the payments service?",
        "Whom do I page if checkout breaks at night?",
        "Aiko took over the payments on-call rotation from Marco.",
        "Who is on call for payments now?",
    ),
    Fact(
        "branch",
        "Feature branches are named after the Jira ticket, like PAY-123.",
        "How are feature branches named after Jira tickets?",
        "What naming convention do we follow for new git work?",
    ),
    Fact(
        "tests",
        "Integration tests need Docker running locally.",
        "What do integration tests need running locally?",
        "Which container tool must be up before the slow suite?",
    ),
    Fact(
        "laptop",
        "My laptop is a ThinkPad X1 Carbon with 32 GB of RAM.",
        "How much RAM does my ThinkPad have?",
        "What machine do I use for work?",
    ),
    Fact(
        "monitor",
        "We monitor the services with Grafana and Prometheus alerts.",
        "Which tools do we monitor services with, Grafana?",
        "How do we observe production health?",
    ),
    Fact(
        "license",
        "The SDK is released under the Apache 2.0 license.",
        "Which license is the SDK released under?",
        "What terms may others reuse the toolkit on?",
    ),
    Fact(
        "db-orm",
        "We use SQLAlchemy 2 with async sessions for the database layer.",
        "Which SQLAlchemy version do we use for the database layer?",
        "What library maps our tables to objects?",
    ),
    Fact(
        "standup",
        "Daily standup is at 9:30 in the Atlas meeting room.",
        "When is the daily standup in Atlas?",
        "What time is our morning sync?",
        "Standup moved to 10:15, still in Atlas.",
        "When is the daily standup now?",
    ),
    Fact(
        "region",
        "Production runs in the eu-west-1 AWS region.",
        "Which AWS region does production run in?",
        "Where are our live servers hosted?",
    ),
    Fact(
        "secrets",
        "Secrets are stored in HashiCorp Vault, never in env files.",
        "Where are secrets stored, Vault?",
        "How do we keep passwords and tokens safe?",
    ),
    Fact(
        "tabs",
        "I prefer four spaces for indentation, never tabs.",
        "Do I prefer spaces or tabs for indentation?",
        "How should nested blocks be laid out for me?",
    ),
    Fact(
        "api-version",
        "The public API is versioned in the URL path as /v2.",
        "How is the public API versioned in the URL path?",
        "Where does the interface revision number go for external callers?",
        "The public API moved to /v3 in the URL path.",
        "Which version is the public API in its URL path now?",
    ),
    Fact(
        "mobile",
        "The mobile app is written in Flutter.",
        "Which framework is the mobile app written in?",
        "What toolkit do we use for the phone software?",
    ),
    Fact(
        "search",
        "Product search is powered by OpenSearch.",
        "What powers product search?",
        "Which engine finds items in the catalogue?",
    ),
    Fact(
        "pm",
        "Our product manager is Lena Fischer.",
        "Who is our product manager?",
        "Who decides the roadmap priorities?",
    ),
    Fact(
        "format",
        "Commit messages follow the Conventional Commits format.",
        "Which format do commit messages follow?",
        "How should I word my git history entries?",
    ),
    Fact(
        "release",
        "We release every second Tuesday.",
        "How often do we release, every second Tuesday?",
        "What is our shipping cadence?",
        "Releases are weekly now, every Tuesday.",
        "How often do we release now?",
    ),
    Fact(
        "bug-tracker",
        "Bugs are tracked in Linear, not GitHub issues.",
        "Where are bugs tracked, Linear?",
        "Which tool holds our defect reports?",
    ),
    Fact(
        "keyboard",
        "I type on a split ergonomic keyboard, a ZSA Moonlander.",
        "Which ergonomic keyboard do I type on?",
        "What input hardware do I use at my desk?",
    ),
    Fact(
        "lang",
        "The data pipeline is written in Rust for speed.",
        "Which language is the data pipeline written in?",
        "What do we code the ETL jobs in?",
    ),
    Fact(
        "docs",
        "Documentation lives in MkDocs under the docs folder.",
        "Where does documentation live, MkDocs?",
        "How do we publish the user guide?",
    ),
    Fact(
        "allergy",
        "I am allergic to peanuts, keep that in mind for team lunches.",
        "What am I allergic to?",
        "Which food must the caterer avoid for me?",
    ),
    Fact(
        "vpn",
        "The VPN for the office network is WireGuard.",
        "Which VPN does the office network use?",
        "How do I tunnel into the company LAN from home?",
    ),
    Fact(
        "payments",
        "Card payments are processed by Adyen.",
        "Who processes card payments?",
        "Which company handles our checkout transactions?",
        "We switched card payments from Adyen to Stripe.",
        "Who processes card payments now?",
    ),
    Fact(
        "node",
        "The build tooling requires Node 20 LTS.",
        "Which Node version does the build tooling require?",
        "What JavaScript runtime release do the bundler scripts need?",
    ),
    Fact("cat", "My cat is named Miso.", "What is my cat named?", "What do I call my feline?"),
)

_SUBJECTS = (
    "the login handler",
    "the billing job",
    "the search page",
    "the retry logic",
    "the CSV export",
    "the websocket client",
    "the migration script",
    "the rate limiter",
    "the config parser",
    "the image resizer",
    "the audit log",
    "the email templates",
    "the feature flags",
    "the GraphQL resolver",
    "the cron scheduler",
    "the signup form",
    "the report builder",
)
_ASKS = (
    "Why does {s} throw a KeyError when the payload is empty?",
    "Can you refactor {s} so it is easier to test?",
    "Add type hints to {s} and fix the mypy errors.",
    "The unit test for {s} is flaky, can you look?",
    "Write a docstring for {s}.",
    "How do I speed up {s}? It takes 3 seconds.",
    "Rename the variables in {s} to something clearer.",
    "Split {s} into smaller functions.",
    "Is there a race condition in {s}?",
    "Log a warning in {s} when the input is malformed.",
)
_ANSWERS = (
    "The problem is that {s} reads the key before checking it exists. Use dict.get with a default "
    "and return early when the payload is empty; I also added a test that sends an empty body.",
    "I moved the I/O out of {s} into a small adapter so the logic is a pure function. The tests "
    "now pass the adapter a fake. Nothing else changed in behaviour.",
    "I added annotations to every function in {s}; two call sites passed None where a str was "
    "expected, so I made those parameters Optional and handled the None case explicitly.",
    "The flakiness comes from {s} depending on dict ordering and the wall clock. I froze the "
    "clock in the test and sorted the output before comparing.",
    "Here is a docstring for {s} that explains the inputs, the return value and the errors it "
    "raises, in the same style as the rest of the module.",
    "Most of the time in {s} goes to a query inside a loop. I batched it into one query and "
    "cached the lookup table; it now takes about 80 ms.",
)


def distractors(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        subject = rng.choice(_SUBJECTS)
        out.append((rng.choice(_ASKS).format(s=subject), rng.choice(_ANSWERS).format(s=subject)))
    return out


def reply(fact: str) -> str:
    return f"Noted: {fact} I will keep that in mind from now on and use it in later answers."


@dataclass(frozen=True)
class Story:
    """Turns in the order told, with the index of each fact's turn (and of its update)."""

    turns: list[Turn]
    told: dict[str, int]
    updated: dict[str, int]


def story(seed: int = 7, chatter: int = 1500, weeks: int = 8) -> Story:
    """The facts told over `weeks` among `chatter` turns; updates come 1 to 3 weeks later."""
    rng = random.Random(seed)
    span = weeks * 7 * DAY
    events: list[tuple[float, str, str, str | None, str | None]] = []
    for user, assistant in distractors(rng, chatter):
        events.append((rng.uniform(0, span), user, assistant, None, None))
    for fact in FACTS:
        at = rng.uniform(0, span * 0.6)
        events.append((at, fact.said, reply(fact.said), fact.key, "told"))
        if fact.update:
            later = at + rng.uniform(7, 21) * DAY
            events.append((later, fact.update, reply(fact.update), fact.key, "updated"))
    events.sort(key=lambda e: e[0])
    start = NOW - span
    turns, told, updated = [], {}, {}
    for i, (at, user, assistant, key, kind) in enumerate(events):
        turns.append(Turn(user=user, assistant=assistant, created_at=start + at))
        if key is not None:
            (told if kind == "told" else updated)[key] = i
    return Story(turns, told, updated)
