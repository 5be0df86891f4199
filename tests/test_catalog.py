import pytest

from monitor.catalog import Catalog, CatalogError, Platform, default_catalog

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
