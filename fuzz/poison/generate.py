#!/usr/bin/env python3
"""Writes the poison mails of issue 12 into fuzz/regressions/mail_read/.

    fuzz/poison/generate.py            # (re)writes every poison-<class>.eml
    fuzz/poison/generate.py --check    # exits 1 if a committed file differs

Each file is one class of input that once cost (or could cost) far more
than its size: small mails that must still be decided within the
per-message budget. The output is deterministic (no clock, no random
module: the garbage bytes come from a fixed xorshift), so the committed
files are exactly what this script writes; `--check` proves it.

tests/fuzz_regressions.rs replays every file through
helpdesk::fuzzing::mail_read, each poison file in its own child process
under a time and memory bound; benches/measure times `helpdesk parse` on
each.
"""

import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "regressions" / "mail_read"

HEAD = (
    "From: alice@example.com\r\n"
    "To: helpdesk@example.com\r\n"
    "Subject: {subject}\r\n"
    "Message-ID: <poison-{name}@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
)


def mail(name, subject, content_type, body, extra=""):
    return (
        HEAD.format(subject=subject, name=name)
        + extra
        + f"Content-Type: {content_type}\r\n\r\n"
        + body
    )


def html(name, body):
    return mail(name, "Increase Storage Quota", "text/html; charset=utf-8", body)


def plain(name, body, subject="Increase Storage Quota"):
    return mail(name, subject, "text/plain; charset=utf-8", body)


REQUEST = "Please increase my storage quota by 5 GB.\r\n"


def xorshift(seed):
    state = seed
    while True:
        state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 7
        state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
        yield state & 0xFF


def wide_table():
    # One row of 100,000 cells (~1 MB): a renderer that lays the row out
    # at full width allocates cells × width.
    cells = "<td>x</td>" * 100_000
    return html("wide-table", f"<html><body><p>{REQUEST}</p><table><tr>{cells}</tr></table></body></html>\r\n")


def deep_div():
    # 400,000 nested <div>s (~2 MB), never closed: depth-proportional work
    # per node is quadratic.
    return html("deep-div", "<html><body>" + "<div>" * 400_000 + REQUEST + "\r\n")


def deep_blockquote():
    # 80,000 nested <blockquote>s (~2 MB), closed: each level adds a
    # quote prefix, so a naive converter writes depth² bytes.
    depth = 80_000
    return html(
        "deep-blockquote",
        f"<p>{REQUEST}</p>" + "<blockquote>" * depth + "old" + "</blockquote>" * depth + "\r\n",
    )


def blank_then_quote():
    # 250,000 blank lines then 40,000 `>` lines (~1 MB): quote stripping
    # that looks back over the blank run for every `>` line is quadratic.
    return plain("blank-then-quote", REQUEST + "\r\n" * 250_000 + "> old text\r\n" * 40_000)


def attribution_quote():
    # 20,000 alternations of an attribution-like line and a quote line
    # (~1 MB): every line is a candidate for a multi-line attribution.
    pair = "On Mon, 1 Jan 2026 at 10:00, Bob Example <bob@example.com> wrote:\r\n> increase the quota of user: bob by 20 GB\r\n"
    return plain("attribution-quote", REQUEST + pair * 9_000)


def long_line_nospace():
    # One 5 MB line without a space: word splitting, wrapping and
    # tokenising see a single 5 MB token.
    return plain("long-line-nospace", REQUEST + "a" * 5_000_000 + "\r\n")


def long_line_spaces():
    # One 5 MB line of words: no line breaks for line-based passes.
    return plain("long-line-spaces", REQUEST + "quota " * 833_334 + "\r\n")


def many_parts():
    # 50,000 MIME parts of a few bytes each (~2 MB).
    parts = "".join(f"--p\r\nContent-Type: text/plain\r\n\r\nx{i}\r\n" for i in range(50_000))
    return mail(
        "many-parts",
        "Increase Storage Quota",
        'multipart/mixed; boundary="p"',
        f"--p\r\nContent-Type: text/plain\r\n\r\n{REQUEST}" + parts + "--p--\r\n",
    )


def deep_multipart():
    # 20,000 nested multipart/mixed parts (~1 MB), each with its own
    # boundary: a recursive MIME reader needs a stack frame per level.
    depth = 20_000
    body = "".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{i + 1}\"\r\n\r\n" for i in range(depth)
    )
    body += f"--b{depth}\r\nContent-Type: text/plain\r\n\r\n{REQUEST}--b{depth}--\r\n"
    body += "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return mail("deep-multipart", "Increase Storage Quota", 'multipart/mixed; boundary="b0"', body)


def many_headers():
    # 100,000 header lines (~1.9 MB), a tenth each of them headers helpdesk
    # looks at (Received, Authentication-Results, From) many times over.
    lines = []
    for i in range(100_000):
        match i % 10:
            case 1:
                lines.append(f"Received: from h{i} by mx\r\n")
            case 2:
                lines.append("Authentication-Results: mx.example.com; dkim=fail\r\n")
            case 3:
                lines.append("From: mallory@example.net\r\n")
            case _:
                lines.append(f"X-F: {i}\r\n")
    return mail("many-headers", "Increase Storage Quota", "text/plain; charset=utf-8", REQUEST, "".join(lines))


def encoded_subject():
    # A subject of 40,000 folded encoded words (~1.2 MB, base64 and Q).
    words = []
    for i in range(40_000):
        words.append("=?utf-8?B?aW5jcmVhc2Ugc3RvcmFnZQ==?=" if i % 2 else "=?iso-8859-1?Q?Gr=FC=DFe_quota?=")
    subject = "\r\n ".join(words)
    return plain("encoded-subject", REQUEST, subject=subject)


def base64_garbage():
    # ~1 MB declared base64 holding garbage: bytes outside the alphabet,
    # stray '=' padding, NULs and overlong lines.
    rng = xorshift(0x5EED_0012)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = bytearray()
    while len(out) < 1_000_000:
        r = next(rng)
        if r < 200:
            out.append(alphabet[r % 64])
        elif r < 215:
            out.append(ord("="))
        elif r < 225:
            out += b"\r\n"
        else:
            out.append(next(rng) or 1)
    head = (
        HEAD.format(subject="Increase Storage Quota", name="base64-garbage")
        + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + bytes(out) + b"\r\n"


CLASSES = {
    "wide-table": wide_table,
    "deep-div": deep_div,
    "deep-blockquote": deep_blockquote,
    "blank-then-quote": blank_then_quote,
    "attribution-quote": attribution_quote,
    "long-line-nospace": long_line_nospace,
    "long-line-spaces": long_line_spaces,
    "many-parts": many_parts,
    "deep-multipart": deep_multipart,
    "many-headers": many_headers,
    "encoded-subject": encoded_subject,
    "base64-garbage": base64_garbage,
}


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        sys.exit("usage: fuzz/poison/generate.py [--check]")
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, make in CLASSES.items():
        data = make()
        if isinstance(data, str):
            data = data.encode()
        path = OUT / f"poison-{name}.eml"
        if check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(path.name)
        else:
            path.write_bytes(data)
            print(f"{path.relative_to(OUT.parent.parent.parent)}: {len(data):,} bytes")
    if stale:
        sys.exit("fuzz/poison/generate.py: stale or missing, rerun it: " + " ".join(stale))


if __name__ == "__main__":
    main()
