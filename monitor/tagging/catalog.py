"""Platform lookup: which social-media platform, if any, a hostname belongs to.

The catalog is data (`monitor/data/platforms.yaml`), validated for duplicate
ids and for a suffix claimed by two platforms. Matching is label-wise on the
domain suffix, longest suffix first, so `m.facebook.com` is Facebook and
`notfacebook.com` is not. The table is a single dict from suffix to platform,
built once: a lookup is at most one dict probe per label of the name. A few
platforms serve from shared CDNs under names like `igcdn-photos-e-a.akamaihd.net`:
a domain entry may carry one `*` inside its first label for those, checked
at the same label depth as the exact suffixes.

Each domain has a role. Most are the platform itself; some only serve other
sites: an `embed` (a player or post shown inside another page), a `widget`
(an SDK, button or login script), a `tracker` (a pixel or analytics tag) or a
`cdn` (static files and images other sites load too). A visit to a news page
that loads `connect.facebook.net` is not use of Facebook, so the policy flags
an access only when its role is `platform` (see monitor.tagging.policy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor import datafiles
from monitor.observation import normalise_hostname

PLATFORM_ROLE = "platform"
EMBED_ROLES = ("embed", "widget", "tracker", "cdn")  # loaded by other sites: never use of the platform
ROLES = (PLATFORM_ROLE, *EMBED_ROLES)
MEMO_CAP = 8192  # hostnames whose match is remembered (cleared when full: memory bounded on any traffic)
_UNSEEN = object()


@dataclass(slots=True, frozen=True)
class Platform:
    id: str
    name: str
    category: str
    domains: tuple[str, ...]
    embeds: tuple[tuple[str, str], ...] = ()  # (domain, role) with role one of EMBED_ROLES


@dataclass(slots=True, frozen=True)
class Match:
    """A hostname's platform and the role of the domain that matched."""

    platform: Platform
    role: str


class CatalogError(ValueError):
    """A catalog entry that would make matching ambiguous or wrong."""


class Catalog:
    """Suffix table from domain to platform."""

    def __init__(self, platforms: Iterable[Platform], memo_cap: int = MEMO_CAP):
        self.platforms: dict[str, Platform] = {}
        self._memo: dict[str, Match | None] = {}  # hostname -> match: a client asks the same few names
        self._memo_cap = memo_cap
        self._by_suffix: dict[str, Match] = {}
        # label patterns, keyed by the suffix after the patterned label:
        # "igcdn-photos-*.akamaihd.net" -> {"akamaihd.net": [("igcdn-photos-", "", instagram)]}
        self._patterns: dict[str, list[tuple[str, str, Match]]] = {}
        for platform in platforms:
            if platform.id in self.platforms:
                raise CatalogError(f"platform {platform.id!r} is listed twice")
            self.platforms[platform.id] = platform
            entries = [(d, PLATFORM_ROLE) for d in platform.domains] + list(platform.embeds)
            for domain, role in entries:
                if role not in ROLES:
                    raise CatalogError(f"platform {platform.id!r}: domain {domain!r} has unknown role "
                                       f"{role!r} (one of {', '.join(ROLES)})")
                suffix = normalise_hostname(domain)
                match = Match(platform, role)
                if "*" in suffix:
                    self._add_pattern(suffix, match)
                    continue
                other = self._by_suffix.get(suffix)
                if other is not None:
                    raise CatalogError(
                        f"domain {suffix!r} is claimed by both {other.platform.id!r} and {platform.id!r}"
                    )
                self._by_suffix[suffix] = match

    def _add_pattern(self, pattern: str, match: Match) -> None:
        """One '*' inside the first label only: shared CDNs name a platform's hosts by prefix."""
        label, dot, rest = pattern.partition(".")
        if not dot or "*" in rest or label.count("*") != 1 or label == "*" or "." not in rest:
            raise CatalogError(
                f"pattern {pattern!r}: one '*' inside the first label, under a registrable domain "
                "(e.g. igcdn-photos-*.akamaihd.net)"
            )
        prefix, _, tail = label.partition("*")
        entries = self._patterns.setdefault(rest, [])
        for other_prefix, other_tail, other in entries:
            if (other_prefix, other_tail) == (prefix, tail):
                raise CatalogError(f"pattern {pattern!r} is claimed by both {other.platform.id!r} and "
                                   f"{match.platform.id!r}")
        entries.append((prefix, tail, match))
        entries.sort(key=lambda e: -len(e[0]) - len(e[1]))  # the most specific pattern first

    def __len__(self) -> int:
        return len(self.platforms)

    @property
    def domain_count(self) -> int:
        return len(self._by_suffix)

    def lookup(self, hostname: str) -> Platform | None:
        """The platform owning the longest matching suffix of `hostname`, or None."""
        match = self.match(hostname)
        return match.platform if match is not None else None

    def match(self, hostname: str) -> Match | None:
        """The platform and role of the longest matching suffix of `hostname`, or None."""
        memo = self._memo
        hit = memo.get(hostname, _UNSEEN)
        if hit is not _UNSEEN:
            return hit  # type: ignore[return-value]
        found = self._match(hostname)
        if len(memo) >= self._memo_cap:
            memo.clear()
        memo[hostname] = found
        return found

    def _match(self, hostname: str) -> Match | None:
        if not hostname:
            return None
        name = hostname.lower().rstrip(".") if hostname.isascii() else normalise_hostname(hostname)
        table = self._by_suffix
        patterns = self._patterns
        while True:
            hit = table.get(name)
            if hit is not None:
                return hit
            dot = name.find(".")
            if dot < 0:
                return None
            if patterns:
                entries = patterns.get(name[dot + 1 :])
                if entries:
                    label = name[:dot]
                    for prefix, tail, match in entries:
                        if (len(label) >= len(prefix) + len(tail) and label.startswith(prefix)
                                and label.endswith(tail)):
                            return match
            name = name[dot + 1 :]

    def restricted(
        self,
        only: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        add: Iterable[Platform] = (),
        extra_domains: dict[str, list[str]] | None = None,
    ) -> Catalog:
        """A new catalog narrowed, trimmed or extended as a trust's config asks."""
        keep = dict(self.platforms)
        if only is not None:
            only_set = set(only)
            keep = {pid: p for pid, p in keep.items() if pid in only_set}
        for pid in exclude:
            keep.pop(pid, None)
        for pid, domains in (extra_domains or {}).items():
            base = keep[pid]
            keep[pid] = Platform(base.id, base.name, base.category, base.domains + tuple(domains),
                                 base.embeds)
        for platform in add:
            keep[platform.id] = platform
        return Catalog(keep.values())


def parse_platforms(raw: Any, where: str) -> list[Platform]:
    """Platforms from the catalog's YAML shape, with errors naming `where`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("platforms"), list):
        raise CatalogError(f"{where}: expected a mapping with a 'platforms' list")
    out = []
    for index, entry in enumerate(raw["platforms"]):
        try:
            out.append(
                Platform(
                    id=str(entry["id"]),
                    name=str(entry["name"]),
                    category=str(entry["category"]),
                    domains=tuple(str(d) for d in entry["domains"]),
                    embeds=parse_embeds(entry.get("embeds") or {}),
                )
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise CatalogError(f"{where}: platforms[{index}]: missing or bad field {exc}") from None
        except CatalogError as exc:
            raise CatalogError(f"{where}: platforms[{index}] ({entry.get('id')}): {exc}") from None
    return out


def parse_embeds(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`{widget: [connect.facebook.net], cdn: [...]}` as (domain, role) pairs."""
    if not isinstance(raw, dict):
        raise CatalogError("embeds: expected a mapping from role to a list of domains")
    out: list[tuple[str, str]] = []
    for role, domains in raw.items():
        if role not in EMBED_ROLES:
            raise CatalogError(f"embeds: unknown role {role!r} (one of {', '.join(EMBED_ROLES)})")
        if not isinstance(domains, list):
            raise CatalogError(f"embeds.{role}: expected a list of domains")
        out.extend((str(d), str(role)) for d in domains)
    return tuple(out)


def default_platforms() -> list[Platform]:
    """The catalog shipped with the package."""
    return parse_platforms(datafiles.load("platforms"), "monitor/data/platforms.yaml")  # compiled if current


def default_catalog() -> Catalog:
    return Catalog(default_platforms())
