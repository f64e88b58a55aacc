vcl 4.1;
# Test VCL for purgebridge's local cluster (tests, demo, benchmarks).
#
# It caches every GET/HEAD for an hour, answers X-Cache: HIT/MISS, hashes on
# URL + Host + a normalised X-Forwarded-Proto (http|https) like many real
# sites do, and accepts from the purge acl:
#   PURGE <path>                    -> return (purge) of that URL/Host/proto
#   BAN   with X-Ban-Url: <regex>   -> lurker-friendly ban on obj.http.x-host
#                                      (exact Host) and obj.http.x-url (regex)
# Anyone else gets 405 for PURGE/BAN.
#
# purgebridge.testing.cluster.render_vcl() replaces the region between the two
# marker lines below with the real backend and acl; what is written here is
# only a placeholder that keeps this file valid on its own.

# >>> purgebridge site: backend and acl
backend default {
    .host = "127.0.0.1";
    .port = "8080";
}

acl purge {
    "127.0.0.1";
    "::1";
}
# <<< purgebridge site

sub vcl_recv {
    if (req.http.X-Forwarded-Proto ~ "(?i)^https") {
        set req.http.X-Forwarded-Proto = "https";
    } else {
        set req.http.X-Forwarded-Proto = "http";
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "PURGE not allowed from this address"));
        }
        return (purge);
    }

    if (req.method == "BAN") {
        if (client.ip !~ purge) {
            return (synth(405, "BAN not allowed from this address"));
        }
        if (!req.http.X-Ban-Url) {
            return (synth(400, "BAN needs an X-Ban-Url header (a regex)"));
        }
        ban("obj.http.x-host == " + req.http.host + " && obj.http.x-url ~ " + req.http.X-Ban-Url);
        return (synth(200, "Banned"));
    }

    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.host) {
        hash_data(req.http.host);
    } else {
        hash_data(server.ip);
    }
    hash_data(req.http.X-Forwarded-Proto);
    return (lookup);
}

sub vcl_backend_response {
    # Kept on the object so bans can be evaluated by the ban lurker.
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.host;
    unset beresp.http.Set-Cookie;
    if (beresp.status == 200) {
        set beresp.ttl = 1h;
    } else {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
    }
    set beresp.grace = 0s;
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.x-url;
    unset resp.http.x-host;
}
