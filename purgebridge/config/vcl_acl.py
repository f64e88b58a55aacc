"""Read the Varnish nodes out of a VCL ``acl`` block.

Many sites already list their Varnish servers in the acl that allows PURGE::

    acl purge {
        "varnish1.example.com";
        "192.0.2.10";
        ! "192.0.2.99";      # negated: explicitly *not* allowed
    }

so ``PURGEBRIDGE_VCL`` lets the operator point at that file instead of
repeating the list. This module is a small tokenizer for the parts of VCL that
matter to find acl blocks safely in real files: ``#``, ``//`` and ``/* */``
comments, ``"..."``, ``{"..."}`` and ``\"\"\"...\"\"\"`` strings (which may contain
comment markers and braces), inline C (``C{ ... }C``), and ``include`` lines,
which are reported but not followed (the included path is relative to
varnishd's ``vcl_path``, which we cannot know).

An acl entry with a network mask (``"10.0.0.0"/24``) names a network, not a
node we could send a purge to, so it is refused with an error naming the line.
A full-length mask (``/32`` for IPv4, ``/128`` for IPv6) is one address and is
accepted.
"""

from dataclasses import dataclass
import ipaddress
import logging
import re
from os import PathLike
from typing import Dict, List, Optional, Sequence, Tuple, Union

from purgebridge.core.errors import VCLParseError
from purgebridge.core.nodes import Node, valid_host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One acl entry as written: ``value`` without quotes, 1-based ``line``."""

    value: str
    line: int
    negated: bool = False
    mask: Optional[int] = None


@dataclass(frozen=True)
class Include:
    """An ``include "path";`` statement (not followed)."""

    path: str
    line: int


@dataclass
class ParsedVCL:
    """What :func:`parse_vcl` found: acls in file order, and includes."""

    acls: Dict[str, List[Entry]]
    acl_lines: Dict[str, int]  # acl name -> line of its definition
    includes: List[Include]


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "punct"
    text: str
    line: int
    brace: bool = False  # a {"..."} long string


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"[0-9]+")


def _tokenize(text: str, path: str) -> List[_Token]:
    """Turn VCL text into tokens, dropping comments and inline C.

    Only what the acl parser needs is distinguished: words, numbers (as
    words), strings and single punctuation characters.
    """
    tokens = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r\f\v":
            i += 1
        elif ch == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise VCLParseError(path, line, "unterminated /* comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif text.startswith("C{", i):
            end = text.find("}C", i + 2)
            if end < 0:
                raise VCLParseError(path, line, "unterminated C{ block")
            line += text.count("\n", i, end)
            i = end + 2
        elif text.startswith('{"', i):
            end = text.find('"}', i + 2)
            if end < 0:
                raise VCLParseError(path, line, 'unterminated {" long string')
            tokens.append(_Token("string", text[i + 2:end], line, brace=True))
            line += text.count("\n", i, end)
            i = end + 2
        elif text.startswith('"""', i):
            end = text.find('"""', i + 3)
            if end < 0:
                raise VCLParseError(path, line, 'unterminated """ string')
            tokens.append(_Token("string", text[i + 3:end], line))
            line += text.count("\n", i, end)
            i = end + 3
        elif ch == '"':
            end = i + 1
            while end < n and text[end] not in '"\n':
                end += 1
            if end >= n or text[end] != '"':
                raise VCLParseError(path, line, "unterminated string")
            tokens.append(_Token("string", text[i + 1:end], line))
            i = end + 1
        else:
            match = _WORD.match(text, i) or _NUMBER.match(text, i)
            if match:
                tokens.append(_Token("word", match.group(0), line))
                i = match.end()
            else:
                tokens.append(_Token("punct", ch, line))
                i += 1
    return tokens


def _parse_entries(tokens: Sequence[_Token], pos: int, path: str, acl_line: int) -> Tuple[List[Entry], int]:
    """Parse acl entries from ``tokens[pos]`` (just after ``{``) up to ``}``.

    Grammar (generous): ``[!] [(] "value" [)] [/ mask] [)] ;``
    Returns ``(entries, position after the closing brace)``.
    """
    entries: List[Entry] = []
    n = len(tokens)
    while True:
        if pos >= n:
            raise VCLParseError(path, acl_line, "acl block is not closed with '}'")
        tok = tokens[pos]
        if tok.kind == "punct" and tok.text == "}":
            return entries, pos + 1
        negated = False
        if tok.kind == "punct" and tok.text == "!":
            negated = True
            pos += 1
        parens = 0
        while pos < n and tokens[pos].kind == "punct" and tokens[pos].text == "(":
            parens += 1
            pos += 1
        if pos >= n or tokens[pos].kind != "string":
            bad = tokens[pos] if pos < n else tok
            raise VCLParseError(path, bad.line, f"expected a quoted address or hostname in acl, found {bad.text!r}")
        value_tok = tokens[pos]
        pos += 1
        mask = None
        while pos < n and tokens[pos].kind == "punct" and tokens[pos].text in ")/":
            if tokens[pos].text == ")":
                parens -= 1
                pos += 1
                continue
            pos += 1
            if pos >= n or tokens[pos].kind != "word" or not tokens[pos].text.isdigit():
                raise VCLParseError(path, value_tok.line, f"expected a number after '/' in acl entry {value_tok.text!r}")
            mask = int(tokens[pos].text)
            pos += 1
        if parens != 0:
            raise VCLParseError(path, value_tok.line, f"unbalanced parentheses around acl entry {value_tok.text!r}")
        if pos >= n or tokens[pos].kind != "punct" or tokens[pos].text != ";":
            raise VCLParseError(path, value_tok.line, f"missing ';' after acl entry {value_tok.text!r}")
        pos += 1
        entries.append(Entry(value=value_tok.text.strip(), line=value_tok.line, negated=negated, mask=mask))


def parse_vcl(text: str, path: str = "<vcl>") -> ParsedVCL:
    """Find every top-level ``acl`` block and ``include`` in VCL ``text``.

    Pure: no file access, no logging. Raises :class:`VCLParseError` for
    syntax this parser cannot follow (unterminated strings, comments or acl
    blocks, malformed entries, an acl defined twice).
    """
    tokens = _tokenize(text, path)
    acls: Dict[str, List[Entry]] = {}
    acl_lines: Dict[str, int] = {}
    includes: List[Include] = []
    depth, pos, n = 0, 0, len(tokens)
    while pos < n:
        tok = tokens[pos]
        if depth == 0 and tok.kind == "word" and tok.text == "include":
            if pos + 1 < n and tokens[pos + 1].kind == "string":
                includes.append(Include(path=tokens[pos + 1].text, line=tok.line))
                pos += 2
                continue
        if depth == 0 and tok.kind == "word" and tok.text == "acl":
            if pos + 1 >= n or tokens[pos + 1].kind != "word":
                raise VCLParseError(path, tok.line, "'acl' must be followed by a name")
            name = tokens[pos + 1].text
            pos += 2
            # acl flags such as -log, +log, +table, -fold, +pedantic
            while pos + 1 < n and tokens[pos].kind == "punct" and tokens[pos].text in "+-" \
                    and tokens[pos + 1].kind == "word":
                pos += 2
            if pos < n and tokens[pos].kind == "string" and tokens[pos].brace:
                # VCL (like varnishd's lexer) reads {" as the start of a long string
                raise VCLParseError(path, tokens[pos].line,
                                    f"'{{\"' after 'acl {name}' starts a long string in VCL; "
                                    "put a space or newline between '{' and the first '\"'")
            if pos >= n or tokens[pos].kind != "punct" or tokens[pos].text != "{":
                raise VCLParseError(path, tok.line, f"expected '{{' after 'acl {name}'")
            if name in acls:
                raise VCLParseError(path, tok.line, f"acl {name} is defined twice (first at line {acl_lines[name]})")
            entries, pos = _parse_entries(tokens, pos + 1, path, tok.line)
            acls[name] = entries
            acl_lines[name] = tok.line
            continue
        if tok.kind == "punct" and tok.text == "{":
            depth += 1
        elif tok.kind == "punct" and tok.text == "}":
            depth = max(0, depth - 1)
        pos += 1
    return ParsedVCL(acls=acls, acl_lines=acl_lines, includes=includes)


def parse_acls(text: str, path: str = "<vcl>") -> Dict[str, List[Entry]]:
    """``{acl name: [Entry, ...]}`` for every acl in ``text``, in file order."""
    return parse_vcl(text, path).acls


def _host_length(value: str) -> Optional[int]:
    try:
        return ipaddress.ip_address(value).max_prefixlen
    except ValueError:
        return None


def entries_to_nodes(entries: Sequence[Entry], port: int, path: str = "<vcl>") -> List[Node]:
    """Turn acl entries into nodes: skip negated ones, refuse networks.

    Duplicates are removed, first occurrence wins, order is kept.
    """
    nodes: List[Node] = []
    for entry in entries:
        if entry.negated:
            continue
        value = entry.value
        if "/" in value:
            raise VCLParseError(path, entry.line,
                                f"acl entry {value!r} looks like a network (mask inside the quotes); "
                                "list each Varnish node's address instead")
        if entry.mask is not None:
            full = _host_length(value)
            if full is None or entry.mask != full:
                raise VCLParseError(path, entry.line,
                                    f"acl entry \"{value}\"/{entry.mask} is a network, not a node; "
                                    "list each Varnish node's address, or set PURGEBRIDGE_NODES")
        if not valid_host(value):
            raise VCLParseError(path, entry.line, f"acl entry {value!r} is not an IP address or hostname")
        host = str(ipaddress.ip_address(value)) if ":" in value else value
        node = Node(host=host, port=port)
        if node not in nodes:
            nodes.append(node)
    return nodes


def nodes_from_vcl(path: Union[str, "PathLike[str]"], acl_name: str = "purge", port: int = 6081) -> List[Node]:
    """The nodes listed in acl ``acl_name`` of the VCL file at ``path``.

    Raises :class:`VCLParseError` (naming file and line) for unreadable
    syntax, network entries, or when the acl does not exist (the message
    lists the acls that do).
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise VCLParseError(path, 0, f"cannot read file: {exc.strerror or exc}") from None
    parsed = parse_vcl(text, path)
    for inc in parsed.includes:
        log.warning("%s:%s: include %r is not followed; acl entries in included files are not read",
                    path, inc.line, inc.path)
    if acl_name not in parsed.acls:
        found = ", ".join(parsed.acls) if parsed.acls else "none"
        hint = " (it may be in an included file, which is not read)" if parsed.includes else ""
        raise VCLParseError(path, text.count("\n") + 1,
                            f"no acl named {acl_name!r}{hint}; acls in this file: {found}")
    nodes = entries_to_nodes(parsed.acls[acl_name], port, path)
    log.debug("%s: acl %s gives %s node(s)", path, acl_name, len(nodes))
    return nodes


def origin_from_vcl(path: Union[str, "PathLike[str]"]) -> Tuple[str, int]:
    """``(host, port)`` of the first ``backend`` in the VCL at ``path``: the one Varnish uses by default.

    ``purgebridge audit`` fetches pages from it directly, bypassing every
    cache, when PURGEBRIDGE_ORIGIN is not set. Raises :class:`VCLParseError`
    when the file has no backend with a ``.host``.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            tokens = _tokenize(fh.read(), path)
    except OSError as exc:
        raise VCLParseError(path, 0, f"cannot read file: {exc.strerror or exc}") from None
    for pos, tok in enumerate(tokens):
        if tok.kind == "word" and tok.text == "backend" and pos + 2 < len(tokens) \
                and tokens[pos + 2].text == "{":
            fields: Dict[str, str] = {}
            i = pos + 3
            while i + 3 < len(tokens) and tokens[i].text != "}":
                # ".host" is two tokens ('.', 'host'); stepping one token at a time finds 'host' '=' value.
                name = tokens[i].text
                if tokens[i + 1].text == "=" and tokens[i + 2].kind in ("string", "word"):
                    fields[name] = tokens[i + 2].text
                    i += 3
                else:
                    i += 1
            if "host" in fields:
                try:
                    return fields["host"], int(fields.get("port", "80"))
                except ValueError:
                    raise VCLParseError(path, tok.line, f"backend port {fields['port']!r} is not a number") from None
    raise VCLParseError(path, 0, "no backend with a .host in this file (PURGEBRIDGE_ORIGIN names the origin instead)")
