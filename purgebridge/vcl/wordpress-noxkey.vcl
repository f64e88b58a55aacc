vcl 4.1;
# GENERATED from vcl/wordpress.vcl by vcl/tests/make-noxkey.sh -- edit wordpress.vcl, then regenerate.
#
# purgebridge: production VCL for WordPress behind Varnish 7.1 (vcl 4.1).
#
# What it does, one named subroutine per feature (docs/vcl.md has the full
# tour and the header table):
#   purgebridge_normalise  Host and X-Forwarded-Proto normalised, internal headers dropped
#   purgebridge_acl_gate   PURGE / BAN / PURGEKEYS / debug only from "acl purge", else 405
#   purgebridge_purge      PURGE -> return (purge) (all variants), soft purge on request
#   purgebridge_ban        BAN + X-Ban-Url -> lurker-friendly ban on obj.http.x-host/x-url
#   purgebridge_keys       PURGEKEYS + xkey-purge / xkey-softpurge, keys scoped by Host
#   purgebridge_nocache    wp-admin, wp-login.php, preview, xmlrpc, wp-cron, non-GET/HEAD
#   purgebridge_static     static assets: cookies stripped both ways, long TTL
#   purgebridge_cookies    logged-in / commenter / password cookies pass, others stripped
#   purgebridge_grace      short grace while healthy, long grace (stale-on-error) when not
#   purgebridge_hash       URL + Host + scheme; the request method is never hashed
#   purgebridge_tag        x-url / x-host / scoped xkey stored on every object
#   purgebridge_ttl        default TTL when the origin says nothing, Set-Cookie stripped
#   purgebridge_xcache     X-Cache: HIT | MISS | PASS and X-Cache-Hits
#   purgebridge_debug      x-url, x-host, xkey shown only to "X-Purgebridge-Debug: 1" from the ACL
#
# Site-specific settings live ONLY between the two "purgebridge site" marker
# lines below; tooling replaces that region textually, so keep both marker
# lines exactly as they are.
#
# Unused subroutines are a compile error in Varnish (vcc_err_unref); if you
# drop a "call", delete the subroutine too or start varnishd with
# -p vcc_err_unref=off.

import std;
import purge as purgevmod;     # named so that "acl purge" keeps its name

# >>> purgebridge site: backend and acl
backend default {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 10s;
}

acl purge { "127.0.0.1"; "::1"; }
# <<< purgebridge site

# Varnish runs the bodies of several "sub vcl_recv" (etc.) in file order. The
# first parts below handle invalidation and tagging; an included degrade.vcl
# comes next; the request rules follow.
sub vcl_recv {
    call purgebridge_normalise;
    call purgebridge_acl_gate;
    call purgebridge_purge;
    call purgebridge_ban;
    call purgebridge_keys;
}

sub vcl_backend_response {
    call purgebridge_tag;
}

# Load-driven degradation (docs/vcl.md, "Degradation"): put degrade.vcl next
# to this file and uncomment the next line. It must stay here: after the site
# region (so "default" stays the first backend) and after the two parts
# above, before every other part of vcl_recv / vcl_backend_response.
#include "./degrade.vcl";

# ---------------------------------------------------------------------------
# Tunables (edit here; they are plain constants on purpose)
#   healthy grace      10s   stale served while a fresh copy is fetched
#   stale-on-error     6h    how long stale copies are kept for a sick origin
#   default TTL        1h    when the origin sends no Cache-Control / Expires
#   static TTL         30d   images, CSS, JS, fonts, media
# ---------------------------------------------------------------------------

# ===========================================================================
# Client side
# ===========================================================================

sub vcl_recv {
    call purgebridge_nocache;
    call purgebridge_grace;
    call purgebridge_static;
    call purgebridge_cookies;
    return (hash);
}

# Why: the cache key must not depend on Host spelling or on how the client
# said the scheme, or the relay cannot know which variants exist.
sub purgebridge_normalise {
    if (req.restarts == 0) {
        # Internal headers are only ever set by this VCL.
        unset req.http.X-Purgebridge-Stale;
        unset req.http.X-Purgebridge-Passed;
        unset req.http.X-Purgebridge-Missed;
        unset req.http.X-Purgebridge-Degrade-Level;
        unset req.http.X-Purgebridge-Keys;
        unset req.http.X-Purged-Count;
    }
    # One spelling per site, for requests and for the relay's PURGE/BAN/PURGEKEYS
    # alike (urls.split_url sends the same): lower case, no trailing dot
    # ("blog.example.test." is the same name), no default port, and no port
    # equal to the one this Varnish listens on (a client that reached the node
    # directly says "blog.example.test:6081" for the same pages).
    if (req.http.Host) {
        set req.http.Host = regsub(std.tolower(req.http.Host), "\.+(:[0-9]+)?$", "\1");
        set req.http.Host = regsub(req.http.Host, ":(80|443)$", "");
        if (req.http.Host ~ ":[0-9]+$" && regsub(req.http.Host, "^.*:", "") == "" + std.port(server.ip)) {
            set req.http.Host = regsub(req.http.Host, ":[0-9]+$", "");
        }
    }
    if (req.http.X-Forwarded-Proto ~ "(?i)^\s*https\s*(,|$)") {
        set req.http.X-Forwarded-Proto = "https";
    } else {
        set req.http.X-Forwarded-Proto = "http";
    }
}

# Why: invalidation and debug output are privileges of the nodes in "acl purge"
# (client.ip; with a TLS terminator in front use the PROXY protocol so that
# client.ip is the real peer, see docs/vcl.md).
sub purgebridge_acl_gate {
    if (req.method == "PURGE" || req.method == "BAN" || req.method == "PURGEKEYS") {
        if (client.ip !~ purge) {
            return (synth(405, "Not allowed"));
        }
    }
    if (req.http.X-Purgebridge-Debug && client.ip !~ purge) {
        unset req.http.X-Purgebridge-Debug;
    }
}

# PURGE drops the object and every variant (Vary, gzip) under this URL + Host +
# scheme. "X-Purge-Soft: 1" instead expires it but keeps it for grace
# (purge.soft in vcl_hit / vcl_miss), so the next visitor gets stale content
# while a fresh copy is fetched.
sub purgebridge_purge {
    if (req.method == "PURGE") {
        if (req.http.X-Purge-Soft == "1") {
            return (hash);
        }
        return (purge);
    }
}

# BAN invalidates every object of this Host whose path+query matches the
# regex in X-Ban-Url ("." = the whole host). Only obj.* is tested, so the ban
# lurker can clean up in the background.
sub purgebridge_ban {
    if (req.method != "BAN") {
        return;
    }
    if (!req.http.X-Ban-Url || req.http.X-Ban-Url == "") {
        return (synth(400, "X-Ban-Url header required"));
    }
    if (req.http.X-Ban-Url ~ "\s") {
        # Ban arguments are not quoted; match whitespace with \s instead.
        return (synth(400, "X-Ban-Url must not contain whitespace"));
    }
    if (req.http.Host !~ "^[a-z0-9.:\[\]_-]+$") {
        return (synth(400, "Bad or missing Host"));
    }
    if (std.ban("obj.http.x-host == " + req.http.Host +
        " && obj.http.x-url ~ " + req.http.X-Ban-Url)) {
        return (synth(200, "Banned"));
    }
    return (synth(400, "Bad ban: " + std.ban_error()));
}

# PURGEKEYS purges every object of this Host tagged with one of the keys in
# xkey-purge (or soft-purges those in xkey-softpurge). Keys are stored as
# "<host>:<key>" (purgebridge_tag), and the requested keys get the same
# prefix here, so one site's keys never touch another site on the same node.
sub purgebridge_keys {
    if (req.method != "PURGEKEYS") {
        return;
    }
    if (!req.http.xkey-purge && !req.http.xkey-softpurge) {
        return (synth(400, "xkey-purge or xkey-softpurge header required"));
    }
    if (req.http.Host !~ "^[a-z0-9.:\[\]_-]+$") {
        return (synth(400, "Bad or missing Host"));
    }
    if (req.http.xkey-purge) {
        set req.http.X-Purgebridge-Keys = req.http.xkey-purge;
    } else {
        set req.http.X-Purgebridge-Keys = req.http.xkey-softpurge;
    }
    set req.http.X-Purgebridge-Keys = regsuball(
        regsuball(" " + req.http.X-Purgebridge-Keys, "[\s,]+", " "),
        " ([^ ]+)", " " + req.http.Host + ":\1");
    if (req.http.X-Purgebridge-Keys !~ "[^ ]") {
        return (synth(400, "No key given"));
    }
    if (req.method == "PURGEKEYS") {
        return (synth(501, "Key purges need vmod xkey (varnish-modules)"));
    }
    return (synth(200, "Purged " + req.http.X-Purged-Count));
}

# Never cache the admin, logins, previews, XML-RPC, cron, or anything that
# is not a GET / HEAD.
sub purgebridge_nocache {
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    if (req.url ~ "^/wp-(admin|login\.php|cron\.php)" ||
        req.url ~ "^/xmlrpc\.php" ||
        req.url ~ "[?&]preview=true(&|$)" ||
        req.http.Authorization) {
        return (pass);
    }
}

# Static assets are the same for everybody: no cookies in, none out, long TTL
# (purgebridge_static_ttl). Query strings are kept (WordPress's ?ver= busts).
sub purgebridge_static {
    if (req.url ~ "(?i)^[^?]*\.(css|js|mjs|map|png|jpe?g|gif|webp|avif|svgz?|ico|bmp|woff2?|ttf|otf|eot|mp4|webm|ogg|ogv|mp3|m4a|wav|flac|pdf|zip|gz|tgz|bz2|7z)(\?.*)?$") {
        unset req.http.Cookie;
        return (hash);
    }
}

# Logged-in users, commenters and visitors of password-protected posts see
# personal pages: pass. Every other cookie (analytics, wordpress_test_cookie)
# is dropped so the anonymous page is shared.
sub purgebridge_cookies {
    if (req.http.Cookie ~ "(^|;\s*)(wordpress_logged_in_|wordpress_sec_|wp-postpass_|comment_author_|wp-settings-)") {
        return (pass);
    }
    unset req.http.Cookie;
}

# Grace: while the origin is healthy, serve stale content for at most 10s
# while it is refreshed in the background. When the backend is sick (a probe
# on "default" says so) or a fetch just failed (vcl_deliver restarts with
# X-Purgebridge-Stale), serve anything still kept (beresp.grace = 6h).
sub purgebridge_grace {
    if (req.http.X-Purgebridge-Stale != "1" && std.healthy(req.backend_hint)) {
        set req.grace = 10s;
    } else {
        # Explicit, because req.grace survives a restart.
        set req.grace = 6h;
    }
}

sub vcl_hash {
    call purgebridge_hash;
}

sub purgebridge_hash {
    hash_data(req.url);
    if (req.http.Host) {
        hash_data(req.http.Host);
    } else {
        hash_data(server.ip);
    }
    hash_data(req.http.X-Forwarded-Proto);
    return (lookup);
}

sub vcl_hit {
    call purgebridge_soft_purge;
}

sub vcl_miss {
    call purgebridge_soft_purge;
    if (req.http.X-Purgebridge-Stale == "1") {
        # Retry after a failed fetch found nothing stale: do not hit the
        # failing origin a second time.
        return (synth(503, "Backend fetch failed"));
    }
    # A synth after this point can only be the failed fetch.
    set req.http.X-Purgebridge-Missed = "1";
}

sub purgebridge_soft_purge {
    if (req.method == "PURGE") {
        set req.http.X-Purged-Count = purgevmod.soft(0s);
        return (synth(200, "Soft purged " + req.http.X-Purged-Count));
    }
}

sub vcl_pass {
    set req.http.X-Purgebridge-Passed = "1";
}

sub vcl_purge {
    return (synth(200, "Purged"));
}

sub vcl_deliver {
    # degrade.vcl, when included, adds X-Degrade-Level before this runs.
    call purgebridge_xcache;
    call purgebridge_debug;
}

sub purgebridge_xcache {
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } else if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    set resp.http.X-Cache-Hits = obj.hits;
}

# Why: x-url / x-host / xkey exist for bans and key purges, not for visitors.
sub purgebridge_debug {
    if (req.http.X-Purgebridge-Debug != "1") {
        unset resp.http.x-url;
        unset resp.http.x-host;
        unset resp.http.xkey;
    }
}

sub vcl_synth {
    call purgebridge_stale_on_error;
    call purgebridge_synth;
}

# A cacheable request whose fetch failed (refused, timeout, 5xx: the backend
# side abandons it, see purgebridge_backend_errors) is retried once with the
# long grace: if a stale copy is still kept it is served instead of the error.
sub purgebridge_stale_on_error {
    if (resp.status == 503 && req.http.X-Purgebridge-Missed == "1" &&
        req.restarts == 0 &&
        (req.method == "GET" || req.method == "HEAD") &&
        req.http.X-Purgebridge-Passed != "1") {
        set req.http.X-Purgebridge-Stale = "1";
        unset req.http.X-Purgebridge-Missed;
        return (restart);
    }
}

sub purgebridge_synth {
    if (req.http.X-Purged-Count) {
        set resp.http.X-Purged-Count = req.http.X-Purged-Count;
    }
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    set resp.body = resp.reason + {"
"};
    return (deliver);
}

# ===========================================================================
# Backend side
# ===========================================================================

sub vcl_backend_fetch {
    unset bereq.http.X-Purgebridge-Stale;
    unset bereq.http.X-Purgebridge-Passed;
    unset bereq.http.X-Purgebridge-Missed;
    unset bereq.http.X-Purgebridge-Debug;
    unset bereq.http.X-Purgebridge-Keys;
    unset bereq.http.X-Purged-Count;
}

sub vcl_backend_response {
    call purgebridge_backend_errors;
    call purgebridge_static_ttl;
    call purgebridge_esi;
    call purgebridge_ttl;
    call purgebridge_grace_backend;
}

# Why: bans test obj.* only (lurker-friendly), so the object must carry its
# own URL and Host. Origin keys are scoped "<host>:<key>" to match
# purgebridge_keys.
sub purgebridge_tag {
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.Host;
    if (beresp.http.xkey) {
        std.collect(beresp.http.xkey, " ");
        set beresp.http.xkey = regsub(
            regsuball(
                regsuball(" " + beresp.http.xkey, "[\s,]+", " "),
                " ([^ ]+)", " " + bereq.http.Host + ":\1"),
            "^ +", "");
    }
}

# A 5xx for a cacheable request is never stored and never replaces a stale
# copy: the fetch is abandoned. A background refresh just stops; a client
# gets "503 Backend fetch failed" in vcl_synth, which retries with the long
# grace (purgebridge_stale_on_error). Why not deliver the origin's error
# page: any object inserted now, even a hit-for-miss one, would hide the
# stale copy from the retry. Passed requests (logged in, admin) get the
# origin's answer unchanged.
sub purgebridge_backend_errors {
    if (beresp.status >= 500 && !bereq.uncacheable) {
        return (abandon);
    }
}

# A failed fetch (connection refused, timeout) is handled like a 5xx: no
# error object in the cache, which would hide the stale copy.
sub vcl_backend_error {
    call purgebridge_fetch_failed;
}

sub purgebridge_fetch_failed {
    if (!bereq.uncacheable) {
        return (abandon);
    }
}

sub purgebridge_static_ttl {
    if (!bereq.uncacheable && bereq.url ~ "(?i)^[^?]*\.(css|js|mjs|map|png|jpe?g|gif|webp|avif|svgz?|ico|bmp|woff2?|ttf|otf|eot|mp4|webm|ogg|ogv|mp3|m4a|wav|flac|pdf|zip|gz|tgz|bz2|7z)(\?.*)?$") {
        unset beresp.http.Set-Cookie;
        if (beresp.status == 200) {
            set beresp.ttl = 30d;
        } else {
            set beresp.ttl = 1m;
        }
        set beresp.grace = 6h;
        return (deliver);
    }
}

# Fragment caching (the reference text's tag cloud): a page whose origin says
# Surrogate-Control: content="ESI/1.0" is parsed for <esi:include>, so each
# fragment is cached, and purged, on its own. The ESI token is removed before
# purgebridge_ttl, so such a page still gets the default TTL.
sub purgebridge_esi {
    if (beresp.http.Surrogate-Control ~ {"(?i)content="ESI/1\.0""}) {
        set beresp.do_esi = true;
        set beresp.http.Surrogate-Control = regsub(
            beresp.http.Surrogate-Control, {"(?i)\s*,?\s*content="ESI/1\.0"\s*,?\s*"}, "");
        if (beresp.http.Surrogate-Control == "") {
            unset beresp.http.Surrogate-Control;
        }
    }
}

# Anonymous, cacheable responses lose Set-Cookie (a cookie there would leak
# into the shared copy). When the origin gives no freshness at all, cache 1h;
# purges keep it fresh. An explicit no-cache / no-store / private is
# respected: the builtin VCL makes it hit-for-miss and its Set-Cookie stays.
sub purgebridge_ttl {
    if (bereq.uncacheable) {
        return;
    }
    if (beresp.http.Surrogate-Control ~ "(?i)no-store" ||
        (!beresp.http.Surrogate-Control &&
         beresp.http.Cache-Control ~ "(?i)(no-cache|no-store|private)") ||
        beresp.http.Vary == "*") {
        return;
    }
    unset beresp.http.Set-Cookie;
    if (!beresp.http.Cache-Control && !beresp.http.Expires &&
        !beresp.http.Surrogate-Control &&
        (beresp.status == 200 || beresp.status == 203 || beresp.status == 301 ||
         beresp.status == 404 || beresp.status == 410)) {
        set beresp.ttl = 1h;
    }
}

sub purgebridge_grace_backend {
    set beresp.grace = 6h;
}
