"""URL validation: everything that could break request framing is refused."""

from hypothesis import given, strategies as st
import pytest

from purgebridge.core.errors import InvalidURL
from purgebridge.core.urls import _split_general, site_of, split_url


@pytest.mark.parametrize("url,expected", [
    ("http://example.test/", ("http", "example.test", "/")),
    ("http://example.test", ("http", "example.test", "/")),
    ("https://EXAMPLE.test:443/a?b=c#frag", ("https", "example.test", "/a?b=c")),
    ("http://example.test:8080/x", ("http", "example.test:8080", "/x")),
    ("http://[::1]:6081/x", ("http", "[::1]:6081", "/x")),
    ("http://127.0.0.1/ü", ("http", "127.0.0.1", "/%C3%BC")),
    ("http://example.test/%E2%82%AC/", ("http", "example.test", "/%E2%82%AC/")),
])
def test_split(url, expected):
    assert split_url(url) == expected


@pytest.mark.parametrize("url,reason", [
    ("http://example.test/a\r\nX-Injected: 1", "CR or LF"),
    ("http://example.test/a\nb", "CR or LF"),
    ("http://example.test/a b", "whitespace"),
    ("http://example.test/a\tb", "whitespace"),
    ("ftp://example.test/", "scheme"),
    ("example.test/page", "scheme"),
    ("http:///nohost", "no host"),
    ("http://user:pw@example.test/", "user"),
    ("http://example.test:99999/", "parsed"),
    ("http://exa_mple.test/", "not a hostname"),
    ("", "empty"),
])
def test_rejected_urls_name_url_and_reason(url, reason):
    with pytest.raises(InvalidURL) as info:
        split_url(url)
    assert reason in str(info.value)
    assert info.value.url == url


def test_site_of():
    assert site_of("https://blog.example.test/2026/") == "blog.example.test"
    assert site_of("http://127.0.0.1:8080/") == "127.0.0.1:8080"


@given(st.text(min_size=0, max_size=40))
def test_any_accepted_target_is_safe_on_the_wire(path):
    try:
        scheme, host, target = split_url("http://example.test/" + path)
    except InvalidURL:
        return
    assert target.startswith("/")
    assert all(0x21 <= ord(c) < 0x7F for c in target + host)


_PLAIN_PATH = "abcXYZ019/%:@!$&'()*+,;=._~-"


def _general_or_error(url):
    try:
        return _split_general(url)
    except InvalidURL as exc:
        return ("InvalidURL", str(exc))


def _split_or_error(url):
    try:
        return split_url(url)
    except InvalidURL as exc:
        return ("InvalidURL", str(exc))


@pytest.mark.parametrize("url", [
    "http://example.test", "https://example.test/", "http://127.0.0.1/a", "http://a..b/", "http://-a.test/",
    "http://example.test/%zz/(x)", "http://" + "a" * 64 + ".test/", "http://example.test/" + "p" * 7200,
    "http://0x7f.1/", "http://exa_mple.test/", "http://example.test//x/./../y;z=1",
])
def test_plain_url_shortcut_answers_like_the_general_path(url):
    assert _split_or_error(url) == _general_or_error(url)


@given(st.sampled_from(["http", "https"]), st.text("abcz019.-", min_size=1, max_size=70),
       st.text(_PLAIN_PATH, max_size=60))
def test_plain_url_shortcut_agrees_with_urlsplit_and_quote(scheme, host, path):
    """The shortcut for plain URLs (no urlsplit, no quote) gives what the general path gives, errors included."""
    url = f"{scheme}://{host}/{path}"
    assert _split_or_error(url) == _general_or_error(url)

