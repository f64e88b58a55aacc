vcl 4.1;
#
# purgebridge: load-driven degradation in three levels, for Varnish 7.1.
#
# Two backends that never carry traffic, only probes: "purgebridge_level2"
# asks the origin GET /?purgebridge-probe=2 and "purgebridge_level3" asks
# GET /?purgebridge-probe=3. The origin answers 200 while it is fine and 503
# when its load passes that level's threshold (the WordPress plugin serves
# this URL). A probe that fails or times out also counts: an origin too busy
# to answer the probe in time is degraded without anybody acting, and it
# returns to level 1 by itself once the probes pass again.
#
#   level 1  both probes healthy          normal rules
#   level 2  level2 probe sick (warning)  cookies stripped, optional fallback
#                                         page, cacheable answers kept >= 5m
#   level 3  level3 probe sick (critical) as level 2 with >= 30m; xmlrpc.php,
#                                         wp-cron.php and non-GET/HEAD get 503
#
# Every response then carries "X-Degrade-Level: 2 (warning)" or
# "X-Degrade-Level: 3 (critical)"; none at level 1. wp-admin and wp-login.php
# keep their cookies at every level so editors can still work.
#
# Use: include it from wordpress.vcl (uncomment `include "./degrade.vcl";`
# there). The file also compiles on its own so that it can be checked with
# varnishd -C, but it is not a complete site VCL by itself.
#
# Only the region between the two "purgebridge degrade" marker lines is
# site-specific; tooling replaces it textually, so keep the marker lines.

import std;

# >>> purgebridge degrade: probes
backend purgebridge_level2 {
    .host = "127.0.0.1";
    .port = "8080";
    .host_header = "localhost";
    .probe = {
        .url = "/?purgebridge-probe=2";
        .timeout = 0.5s;
        .interval = 2s;
        .window = 3;
        .threshold = 3;
        .initial = 3;
    }
}

backend purgebridge_level3 {
    .host = "127.0.0.1";
    .port = "8080";
    .host_header = "localhost";
    .probe = {
        .url = "/?purgebridge-probe=3";
        .timeout = 0.5s;
        .interval = 2s;
        .window = 3;
        .threshold = 3;
        .initial = 3;
    }
}
# <<< purgebridge degrade

# Fallback pages: every page request is rewritten to this URL while the level
# is on ("" = keep the requested URL and only cache it longer). Static assets
# (URLs with a file extension other than .php / .html) are never rewritten.
sub purgebridge_degrade_settings {
    set req.http.X-Purgebridge-Fallback-2 = "";
    set req.http.X-Purgebridge-Fallback-3 = "";
}

sub vcl_recv {
    call purgebridge_degrade_recv;
}

sub vcl_backend_response {
    call purgebridge_degrade_backend_response;
}

sub vcl_deliver {
    call purgebridge_degrade_deliver;
}

sub vcl_synth {
    call purgebridge_degrade_synth;
}

# Level from the probes: level 3 wins over level 2. The level travels to the
# backend side (and to the origin) as X-Purgebridge-Degrade-Level.
sub purgebridge_degrade_level {
    unset req.http.X-Purgebridge-Degrade-Level;
    if (!std.healthy(purgebridge_level3)) {
        set req.http.X-Purgebridge-Degrade-Level = "3";
    } else if (!std.healthy(purgebridge_level2)) {
        set req.http.X-Purgebridge-Degrade-Level = "2";
    }
}

sub purgebridge_degrade_recv {
    call purgebridge_degrade_level;
    if (!req.http.X-Purgebridge-Degrade-Level) {
        return;
    }
    if (req.url ~ "^/wp-(admin|login\.php)") {
        return;
    }
    if (req.http.X-Purgebridge-Degrade-Level == "3" &&
        (req.url ~ "^/(xmlrpc|wp-cron)\.php" ||
         (req.method != "GET" && req.method != "HEAD"))) {
        return (synth(503, "Degraded, try again later"));
    }
    unset req.http.Cookie;
    call purgebridge_degrade_settings;
    if (req.url !~ "^[^?]*\.[A-Za-z0-9]+(\?.*)?$" ||
        req.url ~ "(?i)^[^?]*\.(php|html?)(\?.*)?$") {
        if (req.http.X-Purgebridge-Degrade-Level == "2" &&
            req.http.X-Purgebridge-Fallback-2 != "") {
            set req.url = req.http.X-Purgebridge-Fallback-2;
        } else if (req.http.X-Purgebridge-Degrade-Level == "3" &&
            req.http.X-Purgebridge-Fallback-3 != "") {
            set req.url = req.http.X-Purgebridge-Fallback-3;
        }
    }
    unset req.http.X-Purgebridge-Fallback-2;
    unset req.http.X-Purgebridge-Fallback-3;
}

# Degraded answers are cached whatever the origin said (that is the point:
# protect it), without Set-Cookie, for at least 5 minutes (level 2) or 30
# minutes (level 3). Errors and passes keep the normal rules.
sub purgebridge_degrade_backend_response {
    if (!bereq.http.X-Purgebridge-Degrade-Level || bereq.uncacheable) {
        return;
    }
    if (beresp.status != 200 && beresp.status != 203 && beresp.status != 301 &&
        beresp.status != 302 && beresp.status != 404 && beresp.status != 410) {
        return;
    }
    unset beresp.http.Set-Cookie;
    if (bereq.http.X-Purgebridge-Degrade-Level == "3") {
        if (beresp.ttl < 30m) {
            set beresp.ttl = 30m;
        }
    } else if (beresp.ttl < 5m) {
        set beresp.ttl = 5m;
    }
    set beresp.grace = 6h;
    return (deliver);
}

sub purgebridge_degrade_deliver {
    unset resp.http.X-Degrade-Level;
    call purgebridge_degrade_header;
}

sub purgebridge_degrade_synth {
    call purgebridge_degrade_header;
}

sub purgebridge_degrade_header {
    if (req.http.X-Purgebridge-Degrade-Level == "3") {
        set resp.http.X-Degrade-Level = "3 (critical)";
    } else if (req.http.X-Purgebridge-Degrade-Level == "2") {
        set resp.http.X-Degrade-Level = "2 (warning)";
    }
}
