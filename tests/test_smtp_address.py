"""The fast path for plain <local@domain> addresses agrees with aiosmtpd's full parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailtrap.smtp import _PLAIN_ANGLE_ADDRESS


@pytest.fixture(scope="module")
def reference() -> Iterator[SMTP]:
    loop = asyncio.new_event_loop()
    yield SMTP(object(), loop=loop)
    loop.close()


address_characters = st.sampled_from(list('ab.Z9-+_@<>"() \t[]:=,\\!#~é'))


@settings(max_examples=500, deadline=None)
@given(text=st.text(address_characters, max_size=30))
@example(text="<a.b+c@x-y.example.org> SIZE=100")
@example(text="<a@b> (comment) SIZE=1")
@example(text="<a..b@x>")
@example(text="<a@b.>")
def test_plain_addresses_parse_exactly_as_aiosmtpd_does(reference: SMTP, text: str):
    plain = _PLAIN_ANGLE_ADDRESS.match(text)
    if plain is not None:
        assert (plain["address"], plain["rest"]) == reference._getaddr(text)


def test_the_fast_path_covers_what_clients_usually_send():
    assert _PLAIN_ANGLE_ADDRESS.match("<first.last+tag@mail.example.com> SIZE=2048")
