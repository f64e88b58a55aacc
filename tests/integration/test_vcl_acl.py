"""Unit tests for reading nodes out of VCL acl blocks (purgebridge.config.vcl_acl)."""

import logging
import textwrap

import pytest

from purgebridge.core.errors import ConfigError, VCLParseError
from purgebridge.core.nodes import Node
from purgebridge.config.vcl_acl import Entry, nodes_from_vcl, parse_acls, parse_vcl


UGLY = textwrap.dedent('''\
    vcl 4.1;
    # acl purge { "192.0.2.250"; }   <- commented out, must not count
    import std;
    include "backends.vcl";
    include "lib/xkey.vcl"; // trailing comment

    /* acl purge {
         "192.0.2.251";
       }
    */
    backend default { .host = "127.0.0.1"; .port = "8080"; }

    acl  localnet   { "127.0.0.1";}acl purge -log +table {
        "localhost";                 # the box itself
        "127.0.0.2"; // second
        ! "127.0.0.3";               /* negated: skipped */
        !"127.0.0.4";
        ( "varnish-b.example.test" );
        "::1";
        "2001:DB8::10";
        "127.0.0.2";                 # duplicate, removed
        "192.0.2.10"/32;             # a single host written as /32
        /* "192.0.2.99"; */
        "192.0.2.11" ; # spaces before the semicolon
    }

    sub vcl_recv {
        # a string that looks like an acl and comment markers: acl purge { "192.0.2.200"; }
        set req.http.x-note = "acl purge { // not a comment # nor this /* */ }";
        if (req.method == "PURGE") {
            if (client.ip !~ purge) {
                return (synth(405, "Not allowed # really"));
            }
            return (purge);
        }
    }

    sub vcl_synth {
        synthetic({"<html>acl purge { "192.0.2.201"; } // } </html>"});
        return (deliver);
    }
    ''')


def _write(tmp_path, text, name="site.vcl"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_acls_finds_every_acl_in_order_with_lines_and_flags():
    acls = parse_acls(UGLY)
    assert list(acls) == ["localnet", "purge"]
    assert acls["localnet"] == [Entry("127.0.0.1", 13)]
    purge = acls["purge"]
    assert [e.value for e in purge] == [
        "localhost", "127.0.0.2", "127.0.0.3", "127.0.0.4", "varnish-b.example.test",
        "::1", "2001:DB8::10", "127.0.0.2", "192.0.2.10", "192.0.2.11",
    ]
    assert purge[0].line == 14
    assert purge[2] == Entry("127.0.0.3", 16, negated=True)
    assert purge[3].negated and purge[3].line == 17
    assert purge[8].mask == 32


def test_includes_are_listed_not_followed():
    parsed = parse_vcl(UGLY)
    assert [(i.path, i.line) for i in parsed.includes] == [("backends.vcl", 4), ("lib/xkey.vcl", 5)]


def test_nodes_from_ugly_vcl(tmp_path, caplog):
    path = _write(tmp_path, UGLY)
    with caplog.at_level(logging.WARNING, logger="purgebridge.config.vcl_acl"):
        nodes = nodes_from_vcl(path, port=6081)
    assert nodes == [
        Node("localhost", 6081), Node("127.0.0.2", 6081), Node("varnish-b.example.test", 6081),
        Node("::1", 6081), Node("2001:db8::10", 6081), Node("192.0.2.10", 6081), Node("192.0.2.11", 6081),
    ]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("backends.vcl" in m and "not followed" in m for m in warnings)
    assert any("lib/xkey.vcl" in m for m in warnings)


def test_other_acl_name_and_port(tmp_path):
    path = _write(tmp_path, UGLY)
    assert nodes_from_vcl(path, acl_name="localnet", port=80) == [Node("127.0.0.1", 80)]


def test_missing_acl_lists_the_acls_found(tmp_path):
    path = _write(tmp_path, UGLY)
    with pytest.raises(VCLParseError) as exc:
        nodes_from_vcl(path, acl_name="purgers")
    msg = str(exc.value)
    assert str(path) in msg
    assert "'purgers'" in msg and "localnet, purge" in msg
    assert "included file" in msg  # this file has includes: say where it may be
    assert isinstance(exc.value, ConfigError) and exc.value.variable == "PURGEBRIDGE_VCL"


def test_missing_acl_in_file_without_any_acl(tmp_path):
    path = _write(tmp_path, 'vcl 4.1;\nbackend default none;\n')
    with pytest.raises(VCLParseError, match="acls in this file: none"):
        nodes_from_vcl(path)


@pytest.mark.parametrize("entry", ['"10.0.0.0"/24', '"127.0.0.0" / 8', '"2001:db8::"/32', '"127.0.0.0/8"'])
def test_cidr_entry_is_refused_naming_file_and_line(tmp_path, entry):
    text = f'vcl 4.1;\n\nacl purge {{\n  "127.0.0.1";\n  {entry};\n}}\n'
    path = _write(tmp_path, text)
    with pytest.raises(VCLParseError) as exc:
        nodes_from_vcl(path)
    assert exc.value.line == 5
    assert str(exc.value).startswith(f"{path}:5: ")
    assert "network" in str(exc.value)


def test_cidr_in_negated_entry_or_other_acl_is_fine(tmp_path):
    text = 'acl internal { "127.0.0.0"/8; }\nacl purge { !"127.0.0.0"/8; "127.0.0.9"; }\n'
    assert nodes_from_vcl(_write(tmp_path, text)) == [Node("127.0.0.9", 6081)]


def test_ipv6_full_mask_is_one_host(tmp_path):
    text = 'acl purge { "::1"/128; "0:0:0:0:0:0:0:1"; }'
    assert nodes_from_vcl(_write(tmp_path, text)) == [Node("::1", 6081)]


def test_comment_markers_inside_strings_are_not_comments():
    text = 'sub x { set req.http.a = "/* not a comment"; }\nacl purge { "127.0.0.5"; }\n' \
           'sub y { set req.http.b = "*/ # //"; }\nacl other { "127.0.0.6"; }\n'
    acls = parse_acls(text)
    assert acls == {"purge": [Entry("127.0.0.5", 2)], "other": [Entry("127.0.0.6", 4)]}


def test_comments_glued_to_entries_and_windows_line_endings():
    text = 'acl purge {/*a*/"127.0.0.7";//b\r\n#c\r\n"127.0.0.8";/* multi\r\nline */"127.0.0.9";}\r\n'
    acls = parse_acls(text)
    assert [(e.value, e.line) for e in acls["purge"]] == [("127.0.0.7", 1), ("127.0.0.8", 3), ("127.0.0.9", 4)]


def test_acl_inside_inline_c_and_triple_quoted_strings_is_ignored():
    text = 'C{ /* acl purge { "192.0.2.1"; } */ }C\n' \
           'sub vcl_synth { synthetic("""acl purge { "192.0.2.2"; }"""); }\n' \
           'acl purge { "127.0.0.10"; }\n'
    assert parse_acls(text) == {"purge": [Entry("127.0.0.10", 3)]}


def test_word_acl_inside_a_sub_is_not_an_acl_block():
    text = 'sub vcl_recv { if (req.http.acl) { set req.http.x = "1"; } }\nacl purge { "127.0.0.1"; }'
    assert list(parse_acls(text)) == ["purge"]


@pytest.mark.parametrize("text, line, fragment", [
    ('acl purge {\n "127.0.0.1"\n}', 2, "missing ';'"),
    ('acl purge {\n "127.0.0.1";\n', 1, "not closed"),
    ('acl purge {\n 127.0.0.1;\n}', 2, "quoted"),
    ('\nacl purge {\n "127.0.0.1;\n}', 3, "unterminated string"),
    ('/* open\n\nacl purge { "127.0.0.1"; }', 1, "unterminated /*"),
    ('acl purge { "a"; }\nacl purge { "b"; }', 2, "defined twice"),
    ('acl {\n}', 1, "followed by a name"),
    ('acl purge { "127.0.0.1"/; }', 1, "number after '/'"),
])
def test_syntax_errors_name_the_line(text, line, fragment):
    with pytest.raises(VCLParseError) as exc:
        parse_acls(text, path="x.vcl")
    assert exc.value.line == line
    assert fragment in str(exc.value)
    assert str(exc.value).startswith(f"x.vcl:{line}: ")


def test_entry_that_is_not_a_host_is_refused(tmp_path):
    path = _write(tmp_path, 'acl purge {\n  "not a host";\n}\n')
    with pytest.raises(VCLParseError, match=r":2: .*'not a host' is not an IP address or hostname"):
        nodes_from_vcl(path)


def test_unreadable_file_is_a_vcl_error(tmp_path):
    with pytest.raises(VCLParseError, match="cannot read file"):
        nodes_from_vcl(tmp_path / "nope.vcl")


def test_config_resolves_vcl_nodes_with_union_and_dedup(tmp_path):
    from purgebridge.config.settings import load_settings

    path = _write(tmp_path, 'acl purgers { "127.0.0.2"; "127.0.0.3"; }\n')
    settings = load_settings(environ={
        "PURGEBRIDGE_NODES": "127.0.0.3:7000,127.0.0.2:7000,127.0.0.1:6081",
        "PURGEBRIDGE_VCL": str(path), "PURGEBRIDGE_ACL": "purgers", "PURGEBRIDGE_NODE_PORT": "7000",
    }, dotenv_path="")
    assert [n.name for n in settings.nodes] == ["127.0.0.3:7000", "127.0.0.2:7000", "127.0.0.1:6081"]


def test_brace_quote_is_a_long_string_as_in_varnishd():
    # varnishd's lexer reads {" as a long string, so this is not an acl body; say why.
    with pytest.raises(VCLParseError, match="long string"):
        parse_acls('acl purge {"127.0.0.1";}\n', path="x.vcl")
