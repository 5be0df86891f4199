import pytest

from monitor.tagging.catalog import Catalog, CatalogError, Platform, default_catalog

CATALOG = default_catalog()


@pytest.mark.parametrize(
    ("hostname", "platform"),
    [
        ("facebook.com", "facebook"),
        ("M.Facebook.com.", "facebook"),
        ("notfacebook.com", None),
        ("facebook.com.evil.example", None),
        ("scontent-mxp1-1.cdninstagram.com", "instagram"),
        ("edge-mqtt.facebook.com", "messenger"),  # longer suffix wins over facebook.com
        ("www.threads.net", "threads"),
        ("x.com", "twitter"),
        ("abs.twimg.com", "twitter"),
        ("rr3---sn-abc.googlevideo.com", "youtube"),
        ("www.google.com", None),
        ("en.wikipedia.org", "wikipedia"),
        ("bücher.wikipedia.org", "wikipedia"),  # IDN label
        ("", None),
        ("com", None),
    ],
)
def test_lookup(hostname, platform):
    hit = CATALOG.lookup(hostname)
    assert (hit.id if hit else None) == platform


def test_default_catalog_has_policy_platforms():
    # clause 3.1 names these; the catalog must know each of them
    for pid in ["facebook", "linkedin", "twitter", "youtube", "tiktok", "pinterest", "wikipedia"]:
        assert pid in CATALOG.platforms


def test_duplicate_domain_is_rejected():
    with pytest.raises(CatalogError, match="claimed by both"):
        Catalog([Platform("a", "A", "x", ("a.com",)), Platform("b", "B", "x", ("A.com.",))])


def test_duplicate_id_is_rejected():
    with pytest.raises(CatalogError, match="listed twice"):
        Catalog([Platform("a", "A", "x", ("a.com",)), Platform("a", "A", "x", ("b.com",))])


def test_restricted_narrows_and_extends():
    small = CATALOG.restricted(only=["facebook", "youtube"], extra_domains={"youtube": ["yt.example"]})
    assert set(small.platforms) == {"facebook", "youtube"}
    assert small.lookup("www.yt.example").id == "youtube"
    assert small.lookup("instagram.com") is None


@pytest.mark.parametrize(
    ("hostname", "platform"),
    [
        ("igcdn-photos-g-a.akamaihd.net", "instagram"),
        ("IGCDN-Photos-h-a.akamaihd.net.", "instagram"),
        ("x.igcdn-photos-a-a.akamaihd.net", "instagram"),  # below a patterned label too
        ("igcdn-photos-.akamaihd.net", "instagram"),  # the star may match nothing
        ("other-igcdn-photos-a.akamaihd.net", None),  # a prefix, not a substring
        ("a248.e.akamaihd.net", None),  # the CDN itself is nobody's
        ("igcdn-photos-a.akamaihd.net.evil.example", None),
    ],
)
def test_cdn_label_patterns(hostname, platform):
    hit = CATALOG.lookup(hostname)
    assert (hit.id if hit else None) == platform


@pytest.mark.parametrize("pattern", ["*.akamaihd.net", "a*b*.cdn.example", "x.*.example.com", "p-*.net"])
def test_bad_patterns_are_rejected(pattern):
    with pytest.raises(CatalogError, match="one '\\*'"):
        Catalog([Platform("a", "A", "x", (pattern,))])
