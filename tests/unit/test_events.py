"""Schema checks name the field; URL checks refuse anything that could break a request line."""

import copy
import json
from pathlib import Path

from hypothesis import example, given, strategies as st
import pytest

from purgebridge.core.errors import InvalidEvent, InvalidURL
from purgebridge.core.events import parse_json, validate_purge, validate_webhook, validate_wordpress_event
from purgebridge.core.invalidation import is_surrogate_key, keys_for
from purgebridge.core.mapping import map_content

VECTOR_BODY = json.loads(json.loads((Path(__file__).resolve().parents[1] / "vectors" / "signing.json").read_text())["body"])


def field_of(call, *args):
    with pytest.raises(InvalidEvent) as info:
        call(*args)
    return info.value.field, info.value.message


def test_vector_event_is_valid():
    assert validate_wordpress_event(copy.deepcopy(VECTOR_BODY)) == VECTOR_BODY


def test_unknown_fields_are_ignored():
    body = copy.deepcopy(VECTOR_BODY)
    body["future"] = {"x": 1}
    body["changes"][0]["post"]["menu_order"] = 3
    validate_wordpress_event(body)


@pytest.mark.parametrize("mutate,field,message", [
    (lambda b: b.pop("schema"), "schema", "required"),
    (lambda b: b.update(schema=2), "schema", "unsupported"),
    (lambda b: b.update(schema=True), "schema", "expected integer"),
    (lambda b: b.update(site=5), "site", "expected string"),
    (lambda b: b.update(site="ftp://x.test/"), "site", "scheme"),
    (lambda b: b.update(sent_at="now"), "sent_at", "expected integer"),
    (lambda b: b.update(changes=[]), "changes", "at least 1"),
    (lambda b: b.update(changes={}), "changes", "expected array"),
    (lambda b: b.update(changes=b["changes"] * 501), "changes", "at most 500"),
    (lambda b: b["changes"].append(3), "changes[1]", "expected object"),
    (lambda b: b["changes"][0].update(kind="widget"), "changes[0].kind", "expected one of"),
    (lambda b: b["changes"][0].update(action="explode"), "changes[0].action", "for kind post"),
    (lambda b: b["changes"][0].pop("post"), "changes[0].post", "required"),
    (lambda b: b["changes"][0]["post"].update(id="42"), "changes[0].post.id", "expected integer"),
    (lambda b: b["changes"][0]["post"].update(date_new="26.11.2026"), "changes[0].post.date_new", "YYYY-MM-DD"),
    (lambda b: b["changes"][0]["post"].update(url_new="https://blog.example.test/a\r\nX: y"),
     "changes[0].post.url_new", "CR or LF"),
    (lambda b: b["changes"][0]["post"]["author"].update(id="1"), "changes[0].post.author.id", "expected integer"),
    (lambda b: b["changes"][0]["post"]["terms_new"][0].pop("taxonomy"),
     "changes[0].post.terms_new[0].taxonomy", "required"),
    (lambda b: b["changes"][0]["post"]["terms_new"].append("news"), "changes[0].post.terms_new[1]", "expected object"),
    (lambda b: b["changes"][0]["post"].update(terms_old={}), "changes[0].post.terms_old", "expected array"),
])
def test_schema_errors_name_the_field(mutate, field, message):
    body = copy.deepcopy(VECTOR_BODY)
    mutate(body)
    got_field, got_message = field_of(validate_wordpress_event, body)
    assert got_field == field
    assert message in got_message


def test_comment_and_term_and_site_changes():
    post = VECTOR_BODY["changes"][0]["post"]
    base = {"schema": 1, "site": "https://blog.example.test/"}
    validate_wordpress_event(dict(base, changes=[{"kind": "comment", "action": "approve", "post": post,
                                                  "comment_id": 7}]))
    assert field_of(validate_wordpress_event, dict(base, changes=[{"kind": "comment", "action": "approve",
                                                                   "post": post}]))[0] == "changes[0].comment_id"
    term = {"id": 3, "taxonomy": "category", "url": "https://blog.example.test/category/news/"}
    validate_wordpress_event(dict(base, changes=[{"kind": "term", "action": "edit", "term": term}]))
    validate_wordpress_event(dict(base, changes=[{"kind": "site", "action": "purge_all", "reason": "switch_theme"}]))
    assert field_of(validate_wordpress_event, dict(base, changes=[{"kind": "site", "action": "purge_all",
                                                                   "reason": 3}]))[0] == "changes[0].reason"


@pytest.mark.parametrize("raw,message", [
    (b"", "not valid JSON"), (b"{", "not valid JSON"), (b"[1]", "JSON object"), (b"\xff\xfe", "not UTF-8"),
    (b"null", "JSON object"),
])
def test_parse_json(raw, message):
    got_field, got_message = field_of(parse_json, raw)
    assert got_field == "body" and message in got_message


def test_webhook_and_purge_bodies():
    req = validate_webhook({"urls": ["https://blog.example.test/a/"], "site": "blog.example.test",
                            "keys": ["post-1"]})
    assert req.urls == ("https://blog.example.test/a/",) and req.keys == ("post-1",)
    assert field_of(validate_webhook, {})[0] == "body"
    assert field_of(validate_webhook, {"keys": ["post-1"]})[0] == "site"
    assert field_of(validate_webhook, {"purge_all": "yes", "site": "a.test"})[0] == "purge_all"
    assert field_of(validate_webhook, {"content": {"title": "x"}})[0] == "content"
    assert field_of(validate_webhook, {"content": {"url": "https://a.test/\n"}})[0] == "content.url"
    assert field_of(validate_webhook, {"content": {"collections": ["https://a.test/", 4]}})[0] == \
        "content.collections[1]"
    assert field_of(validate_webhook, {"urls": "https://a.test/"})[0] == "urls"
    assert field_of(validate_purge, {"ban": "(", "site": "a.test"})[0] == "ban"
    assert field_of(validate_purge, {"ban": "^/x", })[0] == "site"
    assert field_of(validate_purge, {"urls": ["https://a.test/"], "wait": 1})[0] == "wait"
    assert validate_purge({"ban": "^/x", "site": "a.test", "wait": True}).wait is True


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
       st.sampled_from(["\r", "\n", " ", "\t", "\x00", "\x7f"]), st.text(max_size=10))
def test_urls_with_whitespace_or_controls_are_refused(path, bad, tail):
    url = "https://blog.example.test/" + path + bad + tail
    with pytest.raises(InvalidEvent) as info:
        validate_webhook({"urls": ["https://blog.example.test/", url]})
    assert info.value.field == "urls[1]"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/%", max_size=60),
       st.text(alphabet="abc=&0123456789", max_size=20))
def test_ordinary_urls_pass(path, query):
    url = "https://blog.example.test/" + path + ("?" + query if query else "")
    assert validate_webhook({"urls": [url]}).urls == (url,)


@given(st.one_of(st.text(max_size=30), st.text(alphabet="ab:-", min_size=1, max_size=5).map(lambda k: k + "\n"),
                 st.text(alphabet="abc", min_size=199, max_size=202)))
@example("key\n")  # Python's ``$`` matches before a final newline: the newline would end the xkey header
def test_one_key_rule_for_the_models_the_mapping_and_the_requests(key):
    ok = bool(key) and len(key) <= 200 and all(c.isascii() and (c.isalnum() or c in "._:/-") for c in key)
    assert is_surrogate_key(key) is ok
    content = map_content({"keys": [key]}).keys
    if ok:
        assert validate_webhook({"site": "a.test", "keys": [key]}).keys == (key,)
        assert content == (key,) and keys_for("a.test", [key])
    else:
        assert field_of(validate_webhook, {"site": "a.test", "keys": [key]})[0] == "keys[0]"
        assert content == ()
        with pytest.raises(InvalidURL):
            keys_for("a.test", [key])


def test_site_ping_is_a_valid_change():
    event = {"schema": 1, "site": "https://blog.example.test/",
             "changes": [{"kind": "site", "action": "ping", "reason": "settings test"}]}
    validate_wordpress_event(event)


def test_urls_change_of_the_plugins_public_api():
    base = {"schema": 1, "site": "https://blog.example.test/"}
    validate_wordpress_event(dict(base, changes=[{"kind": "urls", "action": "purge",
                                                  "urls": ["https://blog.example.test/landing/"],
                                                  "archives": [], "keys": ["campaign-7"]}]))
    bad_url = {"kind": "urls", "action": "purge", "urls": ["https://blog.example.test/a b/"]}
    assert field_of(validate_wordpress_event, dict(base, changes=[bad_url]))[0] == "changes[0].urls[0]"
    bad_key = {"kind": "urls", "action": "purge", "keys": ["a key"]}
    assert field_of(validate_wordpress_event, dict(base, changes=[bad_key]))[0] == "changes[0].keys[0]"


def test_site_change_keep_paths_are_site_paths():
    base = {"schema": 1, "site": "https://net.example.test/"}
    ok = {"kind": "site", "action": "purge_all", "reason": "x", "keep_paths": ["/blog2/", "/a/b-c/"]}
    validate_wordpress_event(dict(base, changes=[ok]))
    for bad in ("blog2/", "/blog2", "/(.*)/", "/a b/", 7, "/" + "x" * 250 + "/"):
        change = dict(ok, keep_paths=["/fine/", bad])
        assert field_of(validate_wordpress_event, dict(base, changes=[change]))[0] == "changes[0].keep_paths[1]"
    assert field_of(validate_wordpress_event, dict(base, changes=[dict(ok, keep_paths="/blog2/")]))[0] \
        == "changes[0].keep_paths"
