"""Unit tests of mailtrap.mime.summarize: raw bytes in, summary fields out."""

from __future__ import annotations

import pytest

from mailtrap.mime import MAX_MIME_DEPTH, SNIPPET_BYTES, split_multipart, summarize


def crlf(text: str) -> bytes:
    """A message written with LF line ends in the test, sent with CRLF as on the wire."""
    return text.replace("\n", "\r\n").encode()


def test_rfc2047_subjects_in_utf8_q_utf8_b_and_iso_8859_1_are_decoded():
    assert summarize(b"Subject: =?utf-8?q?hello_w=C3=B6rld?=\r\n\r\n").subject == "hello wörld"
    assert summarize(b"Subject: =?UTF-8?B?4piVIGNhZsOp?=\r\n\r\n").subject == "☕ café"
    assert summarize(b"Subject: =?iso-8859-1?q?Caf=E9?=\r\n\r\n").subject == "Café"


def test_adjacent_encoded_words_join_without_space_and_folded_lines_unfold():
    raw = b"Subject: =?iso-8859-1?q?Caf=E9?= =?utf-8?b?4piV?=\r\n and\r\n\tmore\r\n\r\n"
    assert summarize(raw).subject == "Café☕ and more"


def test_rfc2047_display_names_are_decoded_in_from_to_and_cc():
    raw = crlf(
        "From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\n"
        "To: =?iso-8859-1?b?SvxyZ2Vu?= <j@example.de>\n"
        "Cc: =?utf-8?b?w4lsb2RpZQ==?= <e@example.fr>\n\n"
    )
    summary = summarize(raw)
    assert summary.from_ == {"Name": "Zoë", "Address": "zoe@example.com"}
    assert summary.to == [{"Name": "Jürgen", "Address": "j@example.de"}]
    assert summary.cc == [{"Name": "Élodie", "Address": "e@example.fr"}]


def test_multiple_to_and_cc_addresses_across_repeated_headers_keep_their_order():
    raw = crlf(
        'To: "Doe, Jane" <jane@example.com>, bob@example.com\n'
        "To: carol@example.org\n"
        "Cc: dave@example.net,\n erin@example.net\n\n"
    )
    summary = summarize(raw)
    assert summary.to == [
        {"Name": "Doe, Jane", "Address": "jane@example.com"},
        {"Name": "", "Address": "bob@example.com"},
        {"Name": "", "Address": "carol@example.org"},
    ]
    assert summary.cc == [
        {"Name": "", "Address": "dave@example.net"},
        {"Name": "", "Address": "erin@example.net"},
    ]


def test_reply_to_and_bcc_headers_are_read():
    raw = crlf("Reply-To: Help <help@example.com>\nBcc: hidden@example.com\n\n")
    summary = summarize(raw)
    assert summary.reply_to == [{"Name": "Help", "Address": "help@example.com"}]
    assert summary.bcc == [{"Name": "", "Address": "hidden@example.com"}]


def test_envelope_recipients_missing_from_to_and_cc_become_bcc_case_insensitively():
    raw = crlf("To: Alice <Alice@Example.com>\nCc: bob@example.com\n\n")
    summary = summarize(raw, ["alice@example.com", "BOB@example.com", "secret@example.com"])
    assert summary.bcc == [{"Name": "", "Address": "secret@example.com"}]


MIXED = crlf(
    "From: a@example.com\n"
    "Content-Type: multipart/mixed; boundary=outer\n\n"
    "--outer\n"
    "Content-Type: multipart/related; boundary=inner\n\n"
    "--inner\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    '<p>See <img src="cid:logo@x"></p>\n'
    "--inner\n"
    "Content-Type: image/png; name=logo.png\n"
    "Content-ID: <logo@x>\n"
    "Content-Disposition: inline; filename=logo.png\n"
    "Content-Transfer-Encoding: base64\n\n"
    "iVBORw0KGgo=\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: application/pdf\n"
    'Content-Disposition: attachment; filename="report.pdf"\n'
    "Content-Transfer-Encoding: base64\n\n"
    "JVBERi0=\n"
    "--outer\n"
    "Content-Type: text/plain; name=notes.txt\n"
    "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt\n\n"
    "notes\n"
    "--outer\n"
    "Content-Type: application/zip; name==?utf-8?q?donn=C3=A9es.zip?=\n"
    "Content-Transfer-Encoding: base64\n\n"
    "UEsDBA==\n"
    "--outer--\n"
)


def test_attachments_are_counted_as_mailpit_counts_them():
    summary = summarize(MIXED)
    # Mailpit's rule: Content-Disposition: attachment (report.pdf, the text file) or
    # application/octet-stream. The zip without a disposition is listed with the
    # inline parts, and the inline logo is counted for has:inline.
    assert summary.attachments == 2
    assert summary.attachment_names == ["report.pdf", "résumé.txt"]
    assert summary.inline == 1
    assert summary.parse_error is None


def test_a_text_part_marked_as_attachment_is_not_taken_as_the_body():
    summary = summarize(MIXED)
    # The only text/plain part is an attachment, so the body comes from the HTML.
    assert "notes" not in summary.text
    assert summary.text.split() == ["See"]
    assert summary.snippet == "See"


def test_snippet_comes_from_the_html_when_there_is_html_as_in_mailpit():
    raw = crlf(
        "Content-Type: multipart/alternative; boundary=b\n\n"
        "--b\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Gr=FC=DFe   aus\n\n  Berlin\n"
        "--b\n"
        "Content-Type: text/html\n\n"
        "<p>HTML version</p>\n"
        "--b--\n"
    )
    summary = summarize(raw)
    assert summary.snippet == "HTML version"
    assert summary.text.split() == ["Grüße", "aus", "Berlin"]  # the text is the plain part
    assert summary.text.startswith("Grüße   aus")


def test_base64_text_body_is_decoded():
    raw = crlf(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "SGVsbG8sIHfDtnJsZCE=\n"
    )
    assert summarize(raw).snippet == "Hello, wörld!"


def test_html_only_snippet_strips_tags_and_invisible_elements_and_decodes_entities():
    markup = (
        "<html><head><title>Title</title><style>p {color: red}</style></head><body>"
        "<p>Hello&nbsp;&amp; <b>welcome</b> &lt;friend&gt; &#8364;5</p>"
        "<script>alert('x')</script><!-- a comment -->" + "<p>word</p>" * 200 + "</body></html>"
    )
    raw = b"Content-Type: text/html; charset=utf-8\r\n\r\n" + markup.encode()
    snippet = summarize(raw).snippet
    assert snippet.startswith("Hello & welcome <friend> €5 word word")
    assert "alert" not in snippet and "color" not in snippet and "Title" not in snippet
    assert "<" not in snippet.replace("<friend>", "")
    # Mailpit's length: 200 bytes of UTF-8 (the euro sign is three), then "...".
    assert snippet.endswith("...")
    assert len(snippet[:-3].encode()) <= SNIPPET_BYTES == 200


def test_snippet_collapses_whitespace_and_is_at_most_200_bytes_then_dots():
    raw = b"Content-Type: text/plain\r\n\r\n" + b"lorem  ipsum\r\n\r\n\tdolor " * 100
    snippet = summarize(raw).snippet
    assert len(snippet) == 203 and snippet.endswith("...")
    assert snippet.startswith("lorem ipsum dolor lorem ipsum dolor")
    assert "  " not in snippet and "\n" not in snippet and "\t" not in snippet


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 1 Jul 2003 10:52:37 +0200", "2003-07-01T10:52:37+02:00"),
        ("1 Jul 2003 10:52 GMT", "2003-07-01T10:52:00+00:00"),
        ("Wed, 31 Dec 2025 23:59:59 -0800", "2025-12-31T23:59:59-08:00"),
        # "-0000" means UTC with an unknown local offset: still a full RFC 3339 time
        ("Tue, 1 Jul 2003 10:52:37 -0000", "2003-07-01T10:52:37+00:00"),
        ("yesterday", None),
        ("Mon, 99 Foo 99999999 99:99:99 +9999", None),
    ],
)
def test_date_becomes_rfc3339_or_none(header: str, expected: str | None):
    assert summarize(f"Date: {header}\r\n\r\n".encode()).date == expected


def test_no_date_header_gives_none():
    assert summarize(b"Subject: x\r\n\r\n").date is None


def test_message_id_is_stored_without_angle_brackets():
    assert summarize(b"Message-ID:  <abc.123@example.com> \r\n\r\n").message_id == (
        "abc.123@example.com"
    )


def test_x_tags_are_split_trimmed_deduplicated_and_sorted():
    assert summarize(b"X-Tags: signup, Alpha ,signup,, beta\r\n\r\n").tags == [
        "Alpha",
        "beta",
        "signup",
    ]


def test_a_message_without_headers_or_body_gives_empty_fields():
    summary = summarize(b"")
    assert (summary.subject, summary.from_, summary.to, summary.snippet) == ("", None, [], "")
    assert summary.parse_error is None


def _nested_multiparts(levels: int) -> bytes:
    return (
        b"Subject: deep\r\nFrom: a@example.com\r\n"
        + b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            for i in range(levels)
        )
        + b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=x.pdf"
        + b"\r\n\r\nx\r\n"
    )


def test_nesting_too_deep_sets_parse_error_and_keeps_the_header_fields():
    summary = summarize(_nested_multiparts(3000), ["rcpt@example.com"])
    assert summary.parse_error is not None
    assert summary.parse_error.startswith("MimeLimitError")
    assert f"deeper than {MAX_MIME_DEPTH} levels" in summary.parse_error
    # The header fields stay searchable; the parts past the limit are not read.
    assert (summary.subject, summary.from_, summary.snippet, summary.attachments) == (
        "deep",
        {"Name": "", "Address": "a@example.com"},
        "",
        0,
    )
    assert summary.bcc == [{"Name": "", "Address": "rcpt@example.com"}]


def test_nesting_up_to_the_depth_limit_is_summarized_and_one_more_level_is_not():
    at_limit = summarize(_nested_multiparts(MAX_MIME_DEPTH))
    assert at_limit.parse_error is None
    assert (at_limit.subject, at_limit.attachments, at_limit.attachment_names) == (
        "deep",
        1,
        ["x.pdf"],
    )

    beyond = summarize(_nested_multiparts(MAX_MIME_DEPTH + 1))
    assert beyond.parse_error is not None and "deeper than" in beyond.parse_error


# Regressions: one malformed detail used to make the whole summary empty.


def test_a_malformed_encoded_word_is_kept_as_text_and_the_rest_is_still_summarized():
    raw = crlf(
        "From: a@example.com\nSubject: =?utf-8?b?not*base64?= and =?no-such-charset?q?x?=\n\nbody\n"
    )
    summary = summarize(raw)
    assert summary.parse_error is None
    assert summary.subject == "=?utf-8?b?not*base64?= and =?no-such-charset?q?x?="
    assert summary.from_ == {"Name": "", "Address": "a@example.com"}
    assert summary.snippet == "body"


@pytest.mark.parametrize("charset", ["no-such-charset", "idna", "punycode", "base64"])
def test_a_body_in_an_unusable_charset_is_read_as_utf8(charset: str):
    raw = crlf(f"Subject: kept\nContent-Type: text/plain; charset={charset}\n\n") + b"caf\xc3\xa9"
    summary = summarize(raw)
    assert summary.parse_error is None
    assert summary.subject == "kept"
    assert summary.snippet == "café"


def test_an_rfc2231_file_name_in_an_unusable_charset_still_counts_as_an_attachment():
    raw = crlf(
        "Subject: kept\n"
        "Content-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename*=idna''%ff%fe\n\nx"
    )
    summary = summarize(raw)
    assert summary.parse_error is None
    assert summary.subject == "kept"
    assert summary.attachments == 1


def test_raw_utf8_headers_rfc6532_are_read_as_utf8():
    raw = (
        "From: Zoë <zoe@exämple.com>\r\nTo: Ünïcode <u@example.com>\r\n"
        "Subject: café ☕\r\nX-Tags: grüße\r\n\r\nhi\r\n"
    ).encode()
    summary = summarize(raw)
    assert summary.subject == "café ☕"
    assert summary.from_ == {"Name": "Zoë", "Address": "zoe@exämple.com"}
    assert summary.to == [{"Name": "Ünïcode", "Address": "u@example.com"}]
    assert summary.tags == ["grüße"]


def test_an_8bit_utf8_attachment_file_name_is_read_as_utf8():
    raw = (
        b"Subject: kept\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--X\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="caf\xc3\xa9.pdf"\r\n\r\nxx\r\n'
        b"--X--\r\n"
    )
    summary = summarize(raw)
    assert summary.parse_error is None
    assert summary.subject == "kept"
    assert summary.attachment_names == ["café.pdf"]


def test_invalid_utf8_and_nul_bytes_in_headers_do_not_break_the_summary():
    raw = b"Subject: bad \xff\xfe and \x00 nul\r\nFrom: a@example.com\r\n\r\nbody \xff\r\n"
    summary = summarize(raw)
    assert summary.parse_error is None
    assert summary.subject == "bad \ufffd\ufffd and \x00 nul"
    assert summary.from_ == {"Name": "", "Address": "a@example.com"}
    assert summary.snippet == "body \ufffd"


def test_split_multipart_cuts_at_delimiter_lines_only():
    body = (
        b"preamble\r\n"
        b"--XY\r\n"
        b"Content-Type: text/plain\r\n\r\none --XY inside a line\r\n"
        b"--XYZ not our boundary\r\n"
        b"--XY  \r\n"
        b"\r\ntwo, no headers\r\n"
        b"--XY--\r\n"
        b"epilogue --XY\r\n"
    )
    assert split_multipart(body, "XY") == [
        b"Content-Type: text/plain\r\n\r\none --XY inside a line\r\n--XYZ not our boundary",
        b"\r\ntwo, no headers",
    ]


def test_split_multipart_takes_a_missing_closing_delimiter_as_the_end():
    assert split_multipart(b"--b\nfirst\n--b\nsecond\n", "b") == [b"first", b"second\n"]
    assert split_multipart(b"no delimiter at all", "b") == []


def test_a_message_or_part_without_header_fields_is_summarized():
    summary = summarize(b"\r\nno header fields at all\r\n")
    assert (summary.parse_error, summary.snippet) == (None, "no header fields at all")
