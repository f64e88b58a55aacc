"""Capture what a real CMS sends for publish, edit title, change tags, unpublish and delete.

    python tests/cms/capture.py ghost|strapi|wagtail [outdir]

Starts the CMS on loopback (tests/cms/instances.py), points its webhook (or
frontend cache) at a recording server, runs the steps and writes every
request it received, per step, to ``outdir`` (default
tests/cms/payloads/<cms>/). The unit tests of the intake read these files.
"""

import json
from pathlib import Path
import sys
import tempfile
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))

import instances  # noqa: E402

HERE = Path(__file__).resolve().parent


def describe(r: dict) -> str:
    body = json.loads(r["body"] or "{}")
    if "event" in body:
        return body["event"]
    for kind in ("post", "page", "tag"):
        if kind in body:
            cur, prev = body[kind].get("current") or {}, body[kind].get("previous") or {}
            return f"{kind}[{cur.get('status', '')}{' <- ' + ','.join(sorted(prev)) if prev else ''}]"
    return f"{r['method']} {r['path']} {r['body'][:20]}"


def dump(outdir: Path, name: str, recorder: instances.Recorder, since: int) -> int:
    try:
        recorder.wait_for(lambda r: True, timeout=10, since=since)
    except instances.CMSError:
        pass  # a step may send nothing: recorded as an empty list
    recorder.quiet(3)
    got = [{k: v for k, v in r.items() if k != "at"} for r in recorder.requests[since:]]
    (outdir / f"{name}.json").write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {len(got)} request(s): " + ", ".join(
        describe(r)
        for r in got))
    return len(recorder.requests)


def wagtail(outdir: Path, work: Path, recorder: instances.Recorder) -> None:
    started = time.monotonic()
    with instances.Wagtail(work, purge_location=recorder.url) as cms:
        print(f"wagtail up in {time.monotonic() - started:.1f} s")
        n = len(recorder.requests)
        post = cms.publish_post("Hello Wagtail", tags=["red", "blue"])
        n = dump(outdir, "01-publish", recorder, n)
        cms.edit_post(post["id"], title="Hello Wagtail, edited")
        n = dump(outdir, "02-edit-title", recorder, n)
        cms.edit_post(post["id"], tags=["blue", "green"])
        n = dump(outdir, "03-change-tags", recorder, n)
        cms.unpublish_post(post["id"])
        n = dump(outdir, "04-unpublish", recorder, n)
        cms.republish_post(post["id"])
        n = dump(outdir, "05-republish", recorder, n)
        cms.delete_post(post["id"])
        dump(outdir, "06-delete", recorder, n)


def ghost(outdir: Path, work: Path, recorder: instances.Recorder) -> None:
    started = time.monotonic()
    with instances.Ghost(work) as cms:
        print(f"ghost up in {time.monotonic() - started:.1f} s")
        cms.setup_owner()
        cms.add_integration(recorder.url + "/v1/ghost", "ghost-webhook-secret-for-capture", instances.GHOST_EVENTS)
        recorder.quiet(2)
        n = len(recorder.requests)
        post = cms.create_post("Hello Ghost", tags=["Red", "Blue"])
        n = dump(outdir, "01-publish", recorder, n)
        post = cms.edit_post(post, title="Hello Ghost, edited")
        n = dump(outdir, "02-edit-title", recorder, n)
        post = cms.edit_post(post, slug="hello-ghost-moved")
        n = dump(outdir, "03-change-slug", recorder, n)
        post = cms.edit_post(post, tags=["Blue", "Green"])
        n = dump(outdir, "04-change-tags", recorder, n)
        post = cms.edit_post(post, status="draft")
        n = dump(outdir, "05-unpublish", recorder, n)
        post = cms.edit_post(post, status="published")
        n = dump(outdir, "06-republish", recorder, n)
        cms.delete_post(post)
        n = dump(outdir, "07-delete", recorder, n)
        page = cms.create_post("About Ghost", page=True)
        n = dump(outdir, "08-page-publish", recorder, n)
        cms.edit_settings(title="Purgebridge Ghost, renamed")
        dump(outdir, "09-settings", recorder, n)


def strapi(outdir: Path, work: Path, recorder: instances.Recorder) -> None:
    started = time.monotonic()
    with instances.Strapi(work) as cms:
        print(f"strapi up in {time.monotonic() - started:.1f} s")
        cms.register_admin()
        cms.create_article_type()
        print(f"strapi article type in {time.monotonic() - started:.1f} s")
        cms.create_read_token()
        cms.add_webhook(recorder.url + "/v1/webhook/strapi", {"Authorization": "Bearer strapi-capture-token-0123"},
                        instances.STRAPI_EVENTS)
        n = len(recorder.requests)
        doc = cms.create_article("Hello Strapi", tags=["red", "blue"])
        n = dump(outdir, "01-publish", recorder, n)
        cms.update_article(doc["documentId"], title="Hello Strapi, edited")
        n = dump(outdir, "02-edit-title", recorder, n)
        cms.update_article(doc["documentId"], slug="hello-strapi-moved")
        n = dump(outdir, "03-change-slug", recorder, n)
        cms.update_article(doc["documentId"], tags=["blue", "green"])
        n = dump(outdir, "04-change-tags", recorder, n)
        cms.unpublish(doc["documentId"])
        n = dump(outdir, "05-unpublish", recorder, n)
        cms.publish(doc["documentId"])
        n = dump(outdir, "06-republish", recorder, n)
        cms.delete_article(doc["documentId"])
        dump(outdir, "07-delete", recorder, n)


def main(argv) -> int:
    cms = argv[1]
    outdir = Path(argv[2]) if len(argv) > 2 else HERE / "payloads" / cms
    outdir.mkdir(parents=True, exist_ok=True)
    recorder = instances.Recorder()
    try:
        with tempfile.TemporaryDirectory(prefix=f"capture-{cms}-") as work:
            globals()[cms](outdir, Path(work), recorder)
    finally:
        recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
