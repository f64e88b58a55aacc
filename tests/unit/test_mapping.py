"""URL mapping: real WordPress permalink shapes, each event type, rule switches, safety.

The URL shapes below are what WordPress itself generates for each permalink
structure (get_permalink, get_term_link, get_author_posts_url,
get_post_type_archive_link); the plugin sends them in the event.
"""

import logging
import re

from hypothesis import given, settings, strategies as st
import pytest

from purgebridge.core.errors import InvalidEvent
from purgebridge.core.mapping import (
    RULES, Invalidations, SurrogateKey, MappingOptions, Rule, date_archive_rule, map_batch,
    map_change, map_content, rule_names, with_rules,
)

HOME = "https://blog.example.test/"
H = "https://blog.example.test"


def term(term_id, taxonomy, url, url_old=None):
    rest = {"category": "categories", "post_tag": "tags"}.get(taxonomy, taxonomy)
    return {"id": term_id, "taxonomy": taxonomy, "rest_base": rest, "url": url, "url_old": url_old}


NEWS = term(5, "category", f"{H}/category/news/")
SPORT = term(6, "category", f"{H}/category/sport/")
TAG_X = term(9, "post_tag", f"{H}/tag/x/")


def post_change(action="update", *, home=H, post_id=42, type_="post", rest_base="posts",
                status_old="publish", status_new="publish", url_old=None, url_new=None,
                date_old="2026-11-26", date_new="2026-11-26", terms_old=(), terms_new=(),
                author_url=None, type_archive_url=None):
    return {"kind": "post", "action": action, "post": {
        "id": post_id, "type": type_, "rest_base": rest_base,
        "status_old": status_old, "status_new": status_new,
        "url_old": url_old, "url_new": url_new, "date_old": date_old, "date_new": date_new,
        "author": {"id": 3, "url": author_url or f"{home}/author/ann/"},
        "terms_old": list(terms_old), "terms_new": list(terms_new),
        "type_archive_url": type_archive_url}}


def comment_change(action="approve", url=f"{H}/hello-world/"):
    change = post_change(url_old=url, url_new=url, terms_old=[NEWS], terms_new=[NEWS])
    return {"kind": "comment", "action": action, "comment_id": 77, "post": change["post"]}


def term_change(action, the_term):
    return {"kind": "term", "action": action, "term": the_term}


def archive(url, slash="/", pages=3):
    """What the mapping must emit for an archive: itself, its pages and its feed."""
    base = url.rstrip("/")
    return {url, base + "/feed" + slash} | {f"{base}/page/{n}{slash}" for n in range(2, pages + 2)}


def dates(base, y, m, d, slash="/"):
    out = set()
    for url in (f"{base}/{y}{slash}", f"{base}/{y}/{m}{slash}", f"{base}/{y}/{m}/{d}{slash}"):
        out.add(url)
        out |= {f"{url.rstrip('/')}/page/{n}{slash}" for n in (2, 3, 4)}
    return out


# ---------------------------------------------------------------------------
# One full golden mapping: /%postname%/, slug and category changed


def test_postname_update_full_set_of_urls_and_keys():
    change = post_change(url_old=f"{H}/hello/", url_new=f"{H}/hello-world/",
                         terms_old=[NEWS, TAG_X], terms_new=[SPORT, TAG_X])
    result = map_change(HOME, change)
    expected = (
        {f"{H}/hello-world/", f"{H}/hello-world/feed/", f"{H}/hello/", f"{H}/hello/feed/"}
        | {f"{H}/", f"{H}/page/2/", f"{H}/page/3/", f"{H}/page/4/"}
        | {f"{H}/feed/", f"{H}/feed/atom/", f"{H}/feed/rdf/", f"{H}/comments/feed/"}
        | archive(f"{H}/category/news/") | archive(f"{H}/category/sport/") | archive(f"{H}/tag/x/")
        | archive(f"{H}/author/ann/")
        | dates(H, "2026", "11", "26")
        | {f"{H}/wp-json/wp/v2/posts/42", f"{H}/wp-json/wp/v2/posts",
           f"{H}/wp-json/wp/v2/categories/5", f"{H}/wp-json/wp/v2/categories/6", f"{H}/wp-json/wp/v2/tags/9"}
        | {f"{H}/wp-sitemap.xml", f"{H}/wp-sitemap-posts-post-1.xml", f"{H}/wp-sitemap-users-1.xml",
           f"{H}/wp-sitemap-taxonomies-category-1.xml", f"{H}/wp-sitemap-taxonomies-post_tag-1.xml"}
    )
    assert set(result.urls) == expected
    assert result.urls == tuple(sorted(result.urls))
    assert result.keys == ("author-3", "front", "post-42", "term-5", "term-6", "term-9")
    assert result.purge_all is False


# ---------------------------------------------------------------------------
# Permalink shapes, table-driven: (id, home, change, must contain, must not contain)

SHAPES = [
    ("date-structure /%year%/%monthnum%/%day%/%postname%/, date changed",
     HOME,
     post_change(url_old=f"{H}/2026/11/25/hello/", url_new=f"{H}/2026/11/26/hello/",
                 date_old="2026-11-25", date_new="2026-11-26", terms_old=[NEWS], terms_new=[NEWS]),
     {f"{H}/2026/11/25/hello/", f"{H}/2026/11/26/hello/", f"{H}/2026/11/25/", f"{H}/2026/11/26/",
      f"{H}/2026/11/25/page/2/", f"{H}/2026/11/", f"{H}/2026/"},
     set()),
    ("category structure /%category%/%postname%/, moved from news to sport",
     HOME,
     post_change(url_old=f"{H}/news/hello/", url_new=f"{H}/sport/hello/",
                 terms_old=[NEWS], terms_new=[SPORT]),
     {f"{H}/news/hello/", f"{H}/news/hello/feed/", f"{H}/sport/hello/"}
     | archive(f"{H}/category/news/") | archive(f"{H}/category/sport/"),
     set()),
    ("/archives/%post_id%: no trailing slashes anywhere",
     HOME,
     post_change(url_old=f"{H}/archives/42", url_new=f"{H}/archives/42",
                 terms_new=[term(5, "category", f"{H}/archives/category/news")],
                 author_url=f"{H}/archives/author/ann"),
     {f"{H}/archives/42", f"{H}/archives/42/feed", f"{H}/feed", f"{H}/feed/atom", f"{H}/comments/feed",
      f"{H}/page/2", f"{H}/archives/category/news/page/4", f"{H}/archives/category/news/feed",
      f"{H}/archives/author/ann/feed", f"{H}/2026/11/26"},
     {f"{H}/feed/", f"{H}/page/2/", f"{H}/archives/42/"}),
    ("WordPress in a subdirectory /blog/",
     "https://example.test/blog/",
     post_change(home="https://example.test/blog", url_old="https://example.test/blog/hello/",
                 url_new="https://example.test/blog/hello/",
                 terms_new=[term(5, "category", "https://example.test/blog/category/news/")]),
     {"https://example.test/blog/", "https://example.test/blog/page/2/", "https://example.test/blog/feed/",
      "https://example.test/blog/comments/feed/", "https://example.test/blog/wp-json/wp/v2/posts/42",
      "https://example.test/blog/wp-sitemap.xml", "https://example.test/blog/2026/11/26/",
      "https://example.test/blog/category/news/page/2/", "https://example.test/blog/hello/feed/"},
     {"https://example.test/", "https://example.test/feed/", "https://example.test/wp-json/wp/v2/posts/42"}),
    ("custom post type with archive",
     HOME,
     post_change(type_="book", rest_base="books", post_id=7, url_old=f"{H}/book/dune/",
                 url_new=f"{H}/book/dune/", type_archive_url=f"{H}/book/",
                 terms_new=[term(11, "genre", f"{H}/genre/scifi/")]),
     archive(f"{H}/book/") | archive(f"{H}/genre/scifi/")
     | {f"{H}/book/dune/", f"{H}/wp-json/wp/v2/books/7", f"{H}/wp-json/wp/v2/books",
        f"{H}/wp-json/wp/v2/genre/11", f"{H}/wp-sitemap-posts-book-1.xml",
        f"{H}/wp-sitemap-taxonomies-genre-1.xml"},
     {f"{H}/wp-json/wp/v2/posts/7", f"{H}/wp-sitemap-posts-post-1.xml"}),
    ("page with parent, parent changed",
     HOME,
     post_change(type_="page", rest_base="pages", post_id=12, url_old=f"{H}/about/team/",
                 url_new=f"{H}/company/team/"),
     {f"{H}/about/team/", f"{H}/company/team/", f"{H}/wp-json/wp/v2/pages/12",
      f"{H}/wp-sitemap-posts-page-1.xml", f"{H}/"},
     # pages are not in author or date archives
     {f"{H}/author/ann/", f"{H}/2026/", f"{H}/2026/11/26/"}),
    ("plain permalinks ?p=42: query-string archives and ?feed=",
     HOME,
     post_change(url_old=f"{H}/?p=42", url_new=f"{H}/?p=42", terms_new=[term(5, "category", f"{H}/?cat=5")],
                 author_url=f"{H}/?author=3"),
     {f"{H}/?p=42", f"{H}/?feed=rss2&p=42", f"{H}/", f"{H}/?paged=2", f"{H}/?paged=4",
      f"{H}/?feed=rss2", f"{H}/?feed=atom", f"{H}/?feed=rdf", f"{H}/?feed=comments-rss2",
      f"{H}/?cat=5", f"{H}/?cat=5&paged=2", f"{H}/?feed=rss2&cat=5", f"{H}/?author=3&paged=3",
      f"{H}/?m=2026", f"{H}/?m=202611", f"{H}/?m=20261126", f"{H}/?m=20261126&paged=2",
      f"{H}/index.php?rest_route=/wp/v2/posts/42", f"{H}/?sitemap=index",
      f"{H}/?sitemap=posts&sitemap-subtype=post&paged=1"},
     {f"{H}/feed/", f"{H}/page/2/", f"{H}/wp-json/wp/v2/posts/42"}),
]


@pytest.mark.parametrize("home, change, present, absent", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_permalink_shapes(home, change, present, absent):
    urls = set(map_change(home, change).urls)
    assert present <= urls, sorted(present - urls)
    assert not (absent & urls), sorted(absent & urls)


@pytest.mark.parametrize("home, feed", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/feed/"),
    ("https://example.test/blog", "https://example.test/blog/feed/"),
    ("https://example.test/blog/", "https://example.test/blog/feed/"),
])
def test_home_url_with_or_without_trailing_slash(home, feed):
    base = home.rstrip("/")
    change = post_change(url_old=f"{base}/a/", url_new=f"{base}/a/")
    urls = map_change(home, change).urls
    assert feed in urls and f"{base}/a/" in urls


def test_bad_home_url_is_an_event_error():
    with pytest.raises(InvalidEvent) as info:
        map_change("ftp://blog.example.test/", post_change(url_new=f"{H}/a/"))
    assert info.value.field == "site"


def test_archives_post_id_structure_moves_date_archives_with_a_site_rule():
    change = post_change(url_old=f"{H}/archives/42", url_new=f"{H}/archives/42")
    rules = with_rules(Rule("date_archives", "dates under /archives/date/", date_archive_rule("/archives/date/")))
    urls = set(map_change(HOME, change, rules=rules).urls)
    assert {f"{H}/archives/date/2026", f"{H}/archives/date/2026/11", f"{H}/archives/date/2026/11/26",
            f"{H}/archives/date/2026/11/26/page/2"} <= urls
    assert f"{H}/2026" not in urls
    assert rule_names(rules) == rule_names()  # replaced in place, not appended


# ---------------------------------------------------------------------------
# Event types


def test_draft_to_publish_has_no_old_url_even_if_the_plugin_sent_one():
    change = post_change("publish", status_old="draft", url_old=f"{H}/?p=42", url_new=f"{H}/hello/")
    urls = set(map_change(HOME, change).urls)
    assert f"{H}/hello/" in urls and f"{H}/" in urls
    assert not any("p=42" in u for u in urls)


def test_new_post_published_directly():
    change = post_change("publish", status_old=None, url_new=f"{H}/hello/", date_old=None,
                         terms_new=[NEWS, TAG_X])
    result = map_change(HOME, change)
    assert {f"{H}/hello/", f"{H}/2026/11/26/", f"{H}/?purgebridge-fragment=tag-cloud"} \
        | archive(f"{H}/category/news/") <= set(result.urls)


def test_publish_to_trash_purges_the_old_url_and_not_the_trashed_slug():
    change = post_change("trash", status_new="trash", url_old=f"{H}/hello/", url_new=None,
                         terms_old=[NEWS], terms_new=[NEWS])
    urls = set(map_change(HOME, change).urls)
    assert {f"{H}/hello/", f"{H}/hello/feed/", f"{H}/", f"{H}/feed/"} | archive(f"{H}/category/news/") <= urls
    assert not any("__trashed" in u for u in urls)


@pytest.mark.parametrize("action, status_new", [("unpublish", "draft"), ("unpublish", "private"), ("delete", None)])
def test_leaving_publish_purges_old_url(action, status_new):
    change = post_change(action, status_new=status_new, url_old=f"{H}/hello/", url_new=None)
    assert f"{H}/hello/" in map_change(HOME, change).urls


def test_left_publish_even_if_the_plugin_still_sent_the_same_url_new():
    change = post_change("unpublish", status_new="private", url_old=f"{H}/hello/", url_new=f"{H}/hello/")
    urls = map_change(HOME, change).urls
    assert f"{H}/hello/" in urls and f"{H}/hello/feed/" in urls


def test_update_without_permalink_change_emits_the_permalink_once():
    change = post_change(url_old=f"{H}/hello/", url_new=f"{H}/hello/")
    result = map_change(HOME, change)
    assert result.urls.count(f"{H}/hello/") == 1
    assert map_change(HOME, change, MappingOptions(disabled={"post_permalink"})).urls.count(f"{H}/hello/") == 0


def test_draft_saved_again_purges_nothing():
    change = post_change(status_old="draft", status_new="draft", url_old=None, url_new=None)
    assert map_change(HOME, change) == Invalidations()


def test_tag_cloud_only_when_tags_or_their_counts_change():
    same_tags = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_old=[TAG_X], terms_new=[TAG_X])
    assert f"{H}/?purgebridge-fragment=tag-cloud" not in map_change(HOME, same_tags).urls
    added = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_old=[], terms_new=[TAG_X])
    assert f"{H}/?purgebridge-fragment=tag-cloud" in map_change(HOME, added).urls
    unpublished = post_change(status_new="draft", url_old=f"{H}/a/", terms_old=[TAG_X], terms_new=[TAG_X])
    assert f"{H}/?purgebridge-fragment=tag-cloud" in map_change(HOME, unpublished).urls
    only_categories = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_old=[NEWS], terms_new=[SPORT])
    assert f"{H}/?purgebridge-fragment=tag-cloud" not in map_change(HOME, only_categories).urls


@pytest.mark.parametrize("action", ["approve", "unapprove", "spam", "trash", "edit", "new"])
def test_comment(action):
    result = map_change(HOME, comment_change(action))
    assert set(result.urls) == {
        f"{H}/hello-world/", f"{H}/hello-world/feed/", f"{H}/comments/feed/",
        f"{H}/wp-json/wp/v2/posts/42", f"{H}/wp-json/wp/v2/comments?post=42",
        # feeds listing the post print its comment count (RSS2 slash:comments)
        f"{H}/feed/", f"{H}/feed/atom/", f"{H}/feed/rdf/", f"{H}/category/news/feed/", f"{H}/author/ann/feed/"}
    assert result.keys == ("post-42",)


def test_tag_cloud_key_goes_with_the_fragment():
    added = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_old=[], terms_new=[TAG_X])
    assert "tag-cloud" in map_change(HOME, added).keys
    same_tags = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_old=[TAG_X], terms_new=[TAG_X])
    assert "tag-cloud" not in map_change(HOME, same_tags).keys


def test_urls_change_purges_given_urls_archives_and_keys():
    change = {"kind": "urls", "action": "purge", "urls": [f"{H}/landing/", "https://evil.test/x/"],
              "archives": [f"{H}/author/old-name/"], "keys": ["campaign-7", "bad key"]}
    result = map_change(HOME, change)
    assert set(result.urls) == {f"{H}/landing/"} | archive(f"{H}/author/old-name/")
    assert result.keys == ("campaign-7",)
    assert map_change(HOME, {"kind": "urls", "action": "purge"}) == Invalidations()


def test_term_edit_with_slug_change():
    edited = term(5, "category", f"{H}/category/headlines/", url_old=f"{H}/category/news/")
    result = map_change(HOME, term_change("edit", edited))
    assert set(result.urls) == (
        archive(f"{H}/category/headlines/") | archive(f"{H}/category/news/")
        | {f"{H}/wp-json/wp/v2/categories/5", f"{H}/wp-json/wp/v2/categories",
           f"{H}/wp-sitemap.xml", f"{H}/wp-sitemap-taxonomies-category-1.xml"})
    assert result.keys == ("term-5",)


@pytest.mark.parametrize("action", ["create", "edit", "delete"])
def test_tag_term_change_purges_the_tag_cloud(action):
    urls = map_change(HOME, term_change(action, TAG_X)).urls
    assert f"{H}/?purgebridge-fragment=tag-cloud" in urls
    assert archive(f"{H}/tag/x/") <= set(urls)


def test_site_change_is_purge_all():
    change = {"kind": "site", "action": "purge_all", "reason": "switch_theme"}
    assert map_change(HOME, change) == Invalidations(urls=(), keys=(), purge_all=True)


def test_unknown_kind_is_refused():
    with pytest.raises(InvalidEvent) as info:
        map_change(HOME, {"kind": "menu", "action": "x"})
    assert info.value.field == "kind"


# ---------------------------------------------------------------------------
# Options and rule switches

RICH_POST = post_change(url_old=f"{H}/hello/", url_new=f"{H}/hello-world/", terms_old=[NEWS],
                        terms_new=[SPORT, TAG_X], type_archive_url=f"{H}/posts-page/")
CHANGE_FOR_RULE = {name: RICH_POST for name in rule_names()}
CHANGE_FOR_RULE["rest_comments"] = comment_change()
CHANGE_FOR_RULE["listing_feeds"] = comment_change()
CHANGE_FOR_RULE["given_targets"] = {"kind": "urls", "action": "purge", "urls": [f"{H}/landing/"],
                                    "archives": [f"{H}/author/old/"], "keys": ["campaign-7"]}
OPTIONS_FOR_RULE = {name: MappingOptions() for name in rule_names()}
OPTIONS_FOR_RULE["extra_paths"] = MappingOptions(extra_paths=("/sitemap-news.xml",))


@pytest.mark.parametrize("name", rule_names())
def test_switching_a_rule_off_removes_exactly_what_only_it_produced(name):
    change, options = CHANGE_FOR_RULE[name], OPTIONS_FOR_RULE[name]
    alone = map_change(HOME, change, options, rules=[r for r in RULES if r[0] == name])
    assert alone.urls or alone.keys, f"rule {name} produced nothing for its test change"
    others = map_change(HOME, change, options, rules=[r for r in RULES if r[0] != name])
    switched_off = map_change(HOME, change, MappingOptions(
        pagination=options.pagination, extra_paths=options.extra_paths, disabled={name}))
    assert switched_off == others
    full = map_change(HOME, change, options)
    assert set(full.urls) == set(alone.urls) | set(others.urls)
    assert set(full.keys) == set(alone.keys) | set(others.keys)


def test_rules_table_is_name_description_function_triples():
    for name, description, function in RULES:
        assert name.isidentifier() and description and callable(function)
    assert len(set(rule_names())) == len(RULES)


def test_unknown_rule_name_in_disabled_is_a_config_error():
    with pytest.raises(ValueError, match="date_archive"):
        MappingOptions(disabled=["date_archive"])


def test_options_from_json_lists_are_frozen():
    options = MappingOptions(disabled=["tag_cloud"], extra_paths=["/a.xml"], schemes=["https", "http"])
    assert options.disabled == frozenset({"tag_cloud"})
    assert options.extra_paths == ("/a.xml",)
    assert options.schemes == ("https", "http")
    hash(options)


@pytest.mark.parametrize("bad", [
    {"pagination": -1}, {"pagination": 51}, {"pagination": "3"}, {"schemes": ["ftp"]},
    {"extra_paths": ["no-slash"]}, {"extra_paths": ["/a b"]}, {"extra_paths": "/a"},
    {"tag_cloud_path": "//evil.test/x"}, {"keys": "yes"},
])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        MappingOptions(**bad)


@pytest.mark.parametrize("pagination, pages", [(0, []), (1, [2]), (3, [2, 3, 4]), (5, [2, 3, 4, 5, 6])])
def test_pagination_is_the_number_of_extra_pages(pagination, pages):
    change = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/")
    urls = map_change(HOME, change, MappingOptions(pagination=pagination)).urls
    assert sorted(int(u.split("/page/")[1].strip("/")) for u in urls if u.startswith(f"{H}/page/")) == pages


def test_both_schemes_doubles_every_url():
    change = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/")
    one = map_change(HOME, change).urls
    both = map_change(HOME, change, MappingOptions(schemes=("http", "https"))).urls
    assert set(both) == set(one) | {u.replace("https://", "http://", 1) for u in one}
    assert len(both) == 2 * len(one)


def test_urls_take_the_sites_scheme_and_port_form():
    change = post_change(url_old="http://blog.example.test:443/a/", url_new="HTTPS://Blog.Example.Test/a/")
    urls = map_change("https://blog.example.test:443/", change).urls
    assert f"{H}/a/" in urls
    assert all(u.startswith(f"{H}/") for u in urls)


def test_keys_can_be_switched_off_and_extra_paths_added():
    change = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/")
    result = map_change(HOME, change, MappingOptions(keys=False, extra_paths=("/sitemap-news.xml",)))
    assert result.keys == ()
    assert f"{H}/sitemap-news.xml" in result.urls


def test_a_site_can_add_its_own_rule():
    def amp(ctx):
        url = ctx.post.get("url_new")
        return [url + "amp/"] if url else []
    rules = with_rules(Rule("amp", "AMP variant of the permalink", amp))
    urls = map_change(HOME, post_change(url_old=f"{H}/a/", url_new=f"{H}/a/"), rules=rules).urls
    assert f"{H}/a/amp/" in urls
    assert rule_names(rules)[-1] == "amp"


# ---------------------------------------------------------------------------
# Safety: foreign hosts and hostile characters


def test_url_on_another_host_is_dropped_with_a_warning(caplog):
    foreign = term(9, "post_tag", "https://evil.test/tag/x/")
    change = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/", terms_new=[foreign],
                         author_url="https://blog.example.test.evil.test/author/ann/")
    with caplog.at_level(logging.WARNING, logger="purgebridge.core.mapping"):
        urls = map_change(HOME, change).urls
    assert urls and all(u.startswith(f"{H}/") for u in urls)
    assert f"{H}/wp-json/wp/v2/tags/9" in urls  # the term's own REST route is on the site
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "evil.test" in messages and "not the site's host" in messages


def test_other_port_is_another_host():
    change = post_change(url_old="https://blog.example.test:8443/a/", url_new=f"{H}/a/")
    assert not any(":8443" in u for u in map_change(HOME, change).urls)


@pytest.mark.parametrize("bad", [f"{H}/a\r\nX-Evil: 1/", f"{H}/a b/", f"{H}/a\tb/", "javascript:alert(1)", "//evil.test/a/"])
def test_hostile_urls_are_dropped(bad):
    change = post_change(url_old=bad, url_new=f"{H}/ok/")
    urls = map_change(HOME, change).urls
    assert f"{H}/ok/" in urls
    assert all(not any(ord(c) <= 0x20 for c in u) for u in urls)
    assert all(u.startswith(f"{H}/") for u in urls)
    assert not any("evil" in u.lower() for u in urls)


def test_non_ascii_slug_is_percent_encoded():
    change = post_change(url_old=f"{H}/café/", url_new=f"{H}/café/")
    assert f"{H}/caf%C3%A9/" in map_change(HOME, change).urls


# ---------------------------------------------------------------------------
# Batches and the generic webhook content object


def test_map_batch_unions_and_keeps_purge_all():
    a = post_change(url_old=f"{H}/a/", url_new=f"{H}/a/")
    b = comment_change()
    site = {"kind": "site", "action": "purge_all", "reason": "customize_save"}
    batch = map_batch(HOME, [a, b], MappingOptions())
    assert set(batch.urls) == set(map_change(HOME, a).urls) | set(map_change(HOME, b).urls)
    assert batch.purge_all is False
    assert map_batch(HOME, [a, site], MappingOptions()).purge_all is True


def test_map_content():
    obj = {"url": "https://cms.example.test/posts/hello/", "old_url": "https://cms.example.test/posts/hi/",
           "collections": ["https://cms.example.test/tag/news/", "https://evil.test/tag/x/"],
           "keys": ["post-9", "bad key"]}
    result = map_content(obj, MappingOptions(pagination=2))
    assert set(result.urls) == {
        "https://cms.example.test/posts/hello/", "https://cms.example.test/posts/hi/",
        "https://cms.example.test/tag/news/", "https://cms.example.test/tag/news/page/2/",
        "https://cms.example.test/tag/news/page/3/", "https://cms.example.test/tag/news/feed/"}
    assert result.keys == ("post-9",)
    pinned = map_content(obj, MappingOptions(), site_url="https://other.example.test/")
    assert pinned.urls == ()


def test_map_content_keys_only():
    assert map_content({"keys": ["front"]}, MappingOptions()) == Invalidations(keys=("front",))


# ---------------------------------------------------------------------------
# Properties

HOSTS = ["blog.example.test", "evil.test", "blog.example.test:8080"]
slug = st.text(alphabet=st.sampled_from(list("abc-é% \r\n\t/?&=#")), min_size=0, max_size=8)


@st.composite
def any_url(draw):
    scheme = draw(st.sampled_from(["https", "http", "ftp"]))
    return f"{scheme}://{draw(st.sampled_from(HOSTS))}/{draw(slug)}"


maybe_url = st.one_of(st.none(), any_url())
status = st.sampled_from([None, "publish", "draft", "private", "trash", "future"])
date = st.one_of(st.none(), st.dates().map(lambda d: d.isoformat()))
a_term = st.builds(lambda i, tax, url, old: term(i, tax, url, old),
                   st.integers(1, 20), st.sampled_from(["category", "post_tag", "genre"]), any_url(), maybe_url)


@st.composite
def a_change(draw):
    kind = draw(st.sampled_from(["post", "post", "comment", "term", "site"]))
    if kind == "site":
        return {"kind": "site", "action": "purge_all", "reason": "x"}
    if kind == "term":
        return term_change(draw(st.sampled_from(["create", "edit", "delete"])), draw(a_term))
    change = post_change(
        post_id=draw(st.integers(1, 9)), type_=draw(st.sampled_from(["post", "page", "book"])),
        rest_base=draw(st.sampled_from([None, "posts", "pages", "books"])),
        status_old=draw(status), status_new=draw(status), url_old=draw(maybe_url), url_new=draw(maybe_url),
        date_old=draw(date), date_new=draw(date), terms_old=draw(st.lists(a_term, max_size=3)),
        terms_new=draw(st.lists(a_term, max_size=3)), author_url=draw(any_url()),
        type_archive_url=draw(maybe_url))
    if kind == "comment":
        return {"kind": "comment", "action": "approve", "comment_id": 1, "post": change["post"]}
    return change


options_strategy = st.builds(
    MappingOptions, pagination=st.integers(0, 4),
    disabled=st.frozensets(st.sampled_from(rule_names()), max_size=4),
    schemes=st.sampled_from([(), ("http", "https"), ("http",)]),
    keys=st.booleans())
home_strategy = st.sampled_from(["https://blog.example.test/", "http://blog.example.test/blog/",
                                 "https://blog.example.test:8080/"])


@settings(max_examples=300, deadline=None)
@given(home=home_strategy, change=a_change(), options=options_strategy)
def test_every_url_is_on_the_site_and_safe_to_send(home, change, options):
    result = map_change(home, change, options)
    host = home.split("/")[2]
    for url in result.urls:
        assert url.split("/")[2] == host
        assert url.split("://")[0] in (options.schemes or (home.split("://")[0],))
        assert not any(ord(c) <= 0x20 or ord(c) == 0x7F or ord(c) > 0x7E for c in url), url
        assert "#" not in url
    assert list(result.urls) == sorted(set(result.urls))
    assert list(result.keys) == sorted(set(result.keys))
    assert options.keys or result.keys == ()
    assert all(isinstance(k, str) and not isinstance(k, SurrogateKey) for k in result.keys)


@settings(max_examples=150, deadline=None)
@given(home=home_strategy, changes=st.lists(a_change(), min_size=1, max_size=5), options=options_strategy)
def test_map_batch_is_the_union_of_map_change(home, changes, options):
    batch = map_batch(home, changes, options)
    singles = [map_change(home, c, options) for c in changes]
    assert set(batch.urls) == set().union(*(s.urls for s in singles))
    assert set(batch.keys) == set().union(*(s.keys for s in singles))
    assert batch.purge_all == any(s.purge_all for s in singles)


def test_site_ping_purges_nothing():
    from purgebridge.core.mapping import Invalidations, map_change
    assert map_change("https://blog.example.test/", {"kind": "site", "action": "ping", "reason": "settings test"}) \
        == Invalidations()


def test_attachment_page_in_status_inherit_is_public():
    change = post_change(type_="attachment", rest_base="media", status_old="inherit", status_new="inherit",
                         url_old=f"{H}/a/pixel/", url_new=f"{H}/a/pixel/")
    assert f"{H}/a/pixel/" in map_change(HOME, change).urls


# ---------------------------------------------------------------------------
# Explicit URLs and keys (kind "urls": the plugin's "Purge this page", "Purge URL", WP-CLI)


def test_explicit_urls_map_to_exactly_those_urls_and_keys():
    change = {"kind": "urls", "action": "purge", "urls": [f"{H}/about/", f"{H}/?p=7"], "keys": ["post-7"]}
    assert map_change(HOME, change) == Invalidations(urls=(f"{H}/?p=7", f"{H}/about/"), keys=("post-7",))
    both = map_change(HOME, change, MappingOptions(schemes=["http", "https"], keys=False))
    assert set(both.urls) == {"http://blog.example.test/about/", f"{H}/about/",
                              "http://blog.example.test/?p=7", f"{H}/?p=7"} and both.keys == ()


def test_explicit_url_on_another_host_is_dropped(caplog):
    change = {"kind": "urls", "action": "purge", "urls": ["https://evil.test/x/", f"{H}/ok/"]}
    with caplog.at_level(logging.WARNING, logger="purgebridge.core.mapping"):
        assert map_change(HOME, change).urls == (f"{H}/ok/",)
    assert "evil.test" in caplog.text


# --- site purges on a host shared by several sites (WordPress subdirectory networks)

SITE_PURGE = {"kind": "site", "action": "purge_all", "reason": "switch_theme"}


def test_site_purge_of_a_subdirectory_site_bans_its_path_only():
    result = map_change("http://net.example.test/blog2/", SITE_PURGE)
    assert result.purge_all is False and result.urls == () and len(result.bans) == 1
    ban = re.compile(result.bans[0])
    assert all(ban.search(p) for p in ("/blog2/", "/blog2", "/blog2/?p=3", "/blog2/2024/01/02/a/", "/blog2?x"))
    assert not any(ban.search(p) for p in ("/", "/blog22/", "/blog/2024/a/", "/blog3/blog2/"))


def test_site_purge_of_the_main_site_keeps_its_neighbours():
    change = dict(SITE_PURGE, keep_paths=["/blog2/", "/blog3/", "/elsewhere-not-inside/x/"])
    result = map_change("http://net.example.test/", change)
    assert result.purge_all is False
    ban = re.compile(result.bans[0])
    assert all(ban.search(p) for p in ("/", "/blog/2024/01/02/a/", "/about/", "/blog22/", "/feed/", "/?s=x"))
    assert not any(ban.search(p) for p in ("/blog2/", "/blog2", "/blog2/feed/", "/blog3/?p=1"))


def test_site_purge_of_a_root_site_without_neighbours_is_the_whole_host():
    assert map_change("http://net.example.test/", dict(SITE_PURGE, keep_paths=[])).purge_all is True
    # A subdomain network: every site is its own host, so every site purge is a host ban.
    assert map_change("http://blog2.net.example.test/", SITE_PURGE).purge_all is True


def test_batch_union_keeps_site_bans_and_urls():
    post = post_change(home="https://blog.example.test/blog2")
    batch = map_batch("https://blog.example.test/blog2/", [post, SITE_PURGE])
    assert batch.bans and batch.urls and batch.purge_all is False


def test_site_purge_with_too_many_neighbours_for_one_header_bans_the_host():
    keep = [f"/site-number-{n}/" for n in range(400)]
    assert map_change("http://net.example.test/", dict(SITE_PURGE, keep_paths=keep)).purge_all is True
