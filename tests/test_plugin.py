"""The pytest plugin, used the way users use it: inner pytest sessions run by ``pytester``."""

from __future__ import annotations

import importlib.metadata
import re
import socket
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Inner sessions skip the cache and Hypothesis's plugin (2 s per in-process session).
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

# A conftest for the inner sessions: a helper that sends mail the way an application does.
SENDER_CONFTEST = """
import smtplib
from email.message import EmailMessage

import pytest


def send(inbox, to="bob@example.com", subject="Hello", text="Hello", sender="app@example.com",
         html=None, attachment=None, **headers):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename=attachment)
    with smtplib.SMTP(inbox.smtp_host, inbox.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


@pytest.fixture
def sender():
    return send


@pytest.fixture(scope="session")
def mailtrap_settings():
    return {"http": None}  # no web inbox needed: each inner session ends 0.5 s sooner
"""


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions start from a machine where nothing is configured."""
    for name in ("MAILTRAP_URL", "MAILTRAP_SMTP", "MAILTRAP_SKIP_UNREACHABLE", "MAILTRAP_EML_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(SENDER_CONFTEST)
    return pytester


# -- loading ---------------------------------------------------------------------------


def test_the_plugin_is_declared_as_a_pytest11_entry_point():
    (entry_point,) = [
        entry
        for entry in importlib.metadata.entry_points(group="pytest11")
        if entry.name == "mailtrap"
    ]
    assert entry_point.value == "mailtrap.pytest_plugin.plugin"


def test_it_autoloads_and_starts_nothing_until_a_test_asks_for_mail(project: pytest.Pytester):
    project.makepyfile(
        """
        import sys

        def test_not_started_yet(request):
            assert request.config.pluginmanager.has_plugin("mailtrap")
            assert "mailtrap.server" not in sys.modules
            assert "aiosmtpd" not in sys.modules

        def test_started_on_demand(mailtrap, sender):
            sender(mailtrap)
            assert mailtrap.wait_for().subject == "Hello"
        """
    )
    result = project.runpytest_subprocess(*INNER)
    result.assert_outcomes(passed=2)


def test_the_options_are_in_the_help_and_the_plugin_can_be_turned_off(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--help", *INNER)
    result.stdout.fnmatch_lines(
        [
            "*--mailtrap-url=URL*",
            "*--mailtrap-smtp=HOST:PORT*",
            "*--mailtrap-skip-unreachable*",
            "*--mailtrap-eml-dir=DIR*",
        ]
    )
    result = pytester.runpytest_subprocess("--help", "-p", "no:mailtrap", *INNER)
    assert "--mailtrap-url" not in result.stdout.str()


# -- fixtures --------------------------------------------------------------------------


def test_fixture_types_defaults_and_session_scope(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        from pathlib import Path

        from mailtrap import Server
        from mailtrap.pytest_plugin import Inbox

        PORTS = []

        def test_types_and_defaults(mailtrap, mailtrap_server, mailtrap_settings, mailtrap_tls,
                                    mailtrap_auth, mailtrap_listen_host, tmp_path_factory):
            assert isinstance(mailtrap, Inbox)
            assert isinstance(mailtrap_server, Server)
            assert mailtrap.server is mailtrap_server
            address = mailtrap_server.smtp_address
            assert (mailtrap.smtp_host, mailtrap.smtp_port) == (address.host, address.port)
            assert mailtrap.smtp_host == "127.0.0.1" and mailtrap.smtp_port not in (0, 1025)
            assert mailtrap.url == mailtrap_server.http_url
            assert mailtrap.url.startswith("http://127.0.0.1:")
            assert (mailtrap_settings, mailtrap_tls, mailtrap_auth) == ({}, False, None)
            assert mailtrap_listen_host == "127.0.0.1"
            # a fresh database in pytest's temporary directory
            assert Path(mailtrap_server.config.db).is_relative_to(tmp_path_factory.getbasetemp())
            PORTS.append(mailtrap.smtp_port)

        def test_one_server_per_session(mailtrap, mailtrap_server):
            assert PORTS == [mailtrap.smtp_port]
        """
    )
    pytester.runpytest(*INNER).assert_outcomes(passed=2)


def test_settings_fixtures_configure_tls_auth_and_limits(project: pytest.Pytester):
    project.makeconftest(
        SENDER_CONFTEST
        + """
@pytest.fixture(scope="session")
def mailtrap_tls():
    return True

@pytest.fixture(scope="session")
def mailtrap_auth():
    return {"app": "s3cret"}

@pytest.fixture(scope="session")
def mailtrap_settings():
    return {"max_message_size": 4096, "smtp_require_tls": True}
"""
    )
    project.makepyfile(
        """
        import smtplib
        import ssl

        import pytest

        RAW = "From: app@example.com\\r\\nSubject: Over TLS\\r\\n\\r\\nHi"

        def client(mailtrap):
            smtp = smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port, timeout=10)
            smtp.starttls(context=ssl._create_unverified_context())
            return smtp

        def test_plain_text_is_refused(mailtrap):
            with smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port, timeout=10) as smtp:
                with pytest.raises(smtplib.SMTPException):
                    smtp.sendmail("app@example.com", ["bob@example.com"], RAW)

        def test_tls_and_login_deliver(mailtrap):
            with client(mailtrap) as smtp:
                smtp.login("app", "s3cret")
                smtp.sendmail("app@example.com", ["bob@example.com"], RAW)
            mail = mailtrap.wait_for(subject="Over TLS")
            assert (mail.tls, mail.auth_user) == (True, "app")

        def test_a_wrong_password_is_refused(mailtrap):
            with client(mailtrap) as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("app", "wrong")

        def test_the_size_limit_applies(mailtrap):
            with client(mailtrap) as smtp:
                smtp.login("app", "s3cret")
                with pytest.raises(smtplib.SMTPException) as refused:
                    smtp.sendmail("app@example.com", ["bob@example.com"], RAW + "x" * 5000)
            assert "552" in str(refused.value)
            mailtrap.assert_no_message(within=0)
        """
    )
    project.runpytest(*INNER).assert_outcomes(passed=4)


def test_the_factory_starts_a_one_off_server_with_other_settings(project: pytest.Pytester):
    project.makepyfile(
        """
        import smtplib

        import pytest

        STARTED = []

        def test_a_second_server(mailtrap, mailtrap_factory, sender):
            other = mailtrap_factory(auth={"u": "p"}, max_message_size=10_000)
            assert other.smtp_port != mailtrap.smtp_port
            assert other.server.config.max_message_size == 10_000
            with smtplib.SMTP(other.smtp_host, other.smtp_port, timeout=10) as smtp:
                smtp.login("u", "p")
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: other\\r\\n\\r\\nx")
            assert other.wait_for().subject == "other"
            assert other.wait_for().auth_user == "u"
            mailtrap.assert_no_message(within=0)
            STARTED.append(other.smtp_port)

        def test_it_is_stopped_after_the_test():
            with pytest.raises(ConnectionRefusedError):
                smtplib.SMTP("127.0.0.1", STARTED[0], timeout=10)
        """
    )
    project.runpytest(*INNER).assert_outcomes(passed=2)


# -- waiting, filters, isolation -------------------------------------------------------


def test_every_filter_through_the_fixture(project: pytest.Pytester):
    project.makepyfile(
        """
        import re

        import pytest

        @pytest.fixture
        def sent(mailtrap, sender):
            sender(mailtrap, to="Bob <bob@example.com>", Cc="carol@example.com",
                   Bcc="dave@example.com", Reply_To="help@example.com", subject="Invoice 42",
                   text="Pay now", html="<p>Pay <b>now</b></p>", attachment="invoice-42.pdf",
                   X_Campaign="autumn")
            sender(mailtrap, to="zed@example.com", subject="Other", sender="other@example.com")
            return mailtrap

        @pytest.mark.parametrize("filters", [
            {"to": "BOB@example.com"}, {"cc": "carol@example.com"}, {"bcc": "dave@example.com"},
            {"from_": "app@example.com"}, {"reply_to": "help@example.com"},
            {"subject": "Invoice"}, {"text": "Pay now"}, {"html": "<b>now</b>"},
            {"body": "Pay"}, {"header": ("X-Campaign", "autumn")}, {"header": "X-Campaign"},
            {"attachment": "invoice-42.pdf"}, {"subject": re.compile(r"Invoice \\d+")},
            {"to": lambda address: address.startswith("bob@")},
        ], ids=repr)
        def test_filter(sent, filters):
            assert sent.wait_for(**filters).subject == "Invoice 42"
            assert sent.assert_sent(**filters).subject == "Invoice 42"
            assert [mail.subject for mail in sent.filter(**filters)] == ["Invoice 42"]
        """
    )
    project.runpytest(*INNER).assert_outcomes(passed=14)


def test_each_test_sees_only_the_mail_received_since_it_started(project: pytest.Pytester):
    project.makepyfile(
        """
        def test_first(mailtrap, sender):
            sender(mailtrap, subject="first")
            sender(mailtrap, subject="second")
            assert [mail.subject for mail in mailtrap] == ["first", "second"]

        def test_second(mailtrap, sender):
            assert len(mailtrap) == 0
            mailtrap.assert_no_message(within=0.1)
            sender(mailtrap, subject="third")
            assert mailtrap.assert_sent().subject == "third"
            assert len(mailtrap.server.store.ids()) == 3  # the server keeps it all

        def test_clear_starts_the_view_afresh(mailtrap, sender):
            sender(mailtrap, subject="before")
            mailtrap.clear()
            sender(mailtrap, subject="after")
            assert [mail.subject for mail in mailtrap.messages] == ["after"]
        """
    )
    project.runpytest(*INNER).assert_outcomes(passed=3)


WORKER = """
import smtplib
import sys
import time
from email.message import EmailMessage

time.sleep(0.3)
message = EmailMessage()
message["From"], message["To"], message["Subject"] = "worker@example.com", "bob@example.com", "Hi"
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10) as smtp:
    smtp.send_message(message)
"""


def test_mail_sent_by_another_process_or_thread_wakes_the_wait(project: pytest.Pytester):
    project.makepyfile(worker=WORKER)
    project.makepyfile(
        """
        import subprocess
        import sys
        import threading
        import time

        import pytest

        from mailtrap.pytest_plugin import MailAssertionError

        def test_another_process(mailtrap):
            worker = subprocess.Popen(
                [sys.executable, "worker.py", mailtrap.smtp_host, str(mailtrap.smtp_port)]
            )
            try:
                mail = mailtrap.wait_for(timeout=30, from_="worker@example.com")
            finally:
                assert worker.wait(30) == 0
            assert (mail.subject, mail.mail_from) == ("Hi", "worker@example.com")

        def test_woken_at_once_not_at_the_timeout(mailtrap, sender):
            for number in range(3):
                threading.Timer(0.2 + number * 0.1, sender, [mailtrap],
                                {"subject": f"late {number}"}).start()
            started = time.monotonic()
            mails = mailtrap.wait_for(timeout=30, count=3)
            assert time.monotonic() - started < 5
            assert [mail.subject for mail in mails] == ["late 0", "late 1", "late 2"]

        def test_assert_no_message_fails_as_soon_as_one_arrives(mailtrap, sender):
            threading.Timer(0.2, sender, [mailtrap]).start()
            started = time.monotonic()
            with pytest.raises(MailAssertionError, match="but 1 arrived"):
                mailtrap.assert_no_message(within=30)
            assert time.monotonic() - started < 5
        """
    )
    project.runpytest(*INNER).assert_outcomes(passed=3)


def test_pytest_xdist_gives_each_worker_its_own_server(project: pytest.Pytester, tmp_path: Path):
    record = tmp_path / "ports"
    record.mkdir()
    project.makepyfile(
        f"""
        import os

        import pytest

        @pytest.mark.parametrize("number", range(6))
        def test_send(mailtrap, sender, number):
            sender(mailtrap, subject=f"message {{number}}")
            assert mailtrap.assert_sent().subject == f"message {{number}}"
            worker = os.environ["PYTEST_XDIST_WORKER"]
            with open(os.path.join({str(record)!r}, worker), "a") as file:
                file.write(f"{{mailtrap.smtp_port}}\\n")
        """
    )
    result = project.runpytest_subprocess("-n", "2", *INNER)
    result.assert_outcomes(passed=6)
    ports = {path.name: set(path.read_text().split()) for path in record.iterdir()}
    assert sorted(ports) == ["gw0", "gw1"]
    assert all(len(worker_ports) == 1 for worker_ports in ports.values())  # one per worker
    assert ports["gw0"] != ports["gw1"]


# -- failures explain themselves ---------------------------------------------------------

FAILING_TESTS = """
def test_wait_for_times_out(mailtrap, sender):
    sender(mailtrap, to="zed@example.org", subject="Invoice")
    sender(mailtrap, to="bob@example.org", subject="Welcome Bob")
    sender(mailtrap, to="bob@example.com", subject="Invoice")
    mailtrap.wait_for(timeout=0.2, to="bob@example.com", subject="Welcome")

def test_assert_sent_counts(mailtrap, sender):
    sender(mailtrap, subject="Reminder")
    sender(mailtrap, subject="Reminder")
    mailtrap.assert_sent(subject="Reminder")

def test_assert_no_message(mailtrap, sender):
    sender(mailtrap, to="bob@example.com", subject="Oops")
    mailtrap.assert_no_message(within=5, to="bob@example.com")

def test_nothing_arrived(mailtrap):
    mailtrap.wait_for(timeout=0.1)

def test_unknown_filter(mailtrap):
    mailtrap.wait_for(too="bob@example.com")
"""


def test_failures_say_what_was_expected_and_what_arrived_closest_first(project: pytest.Pytester):
    project.makepyfile(FAILING_TESTS)
    basetemp = project.path / "basetemp"
    result = project.runpytest(*INNER, "-rN", f"--basetemp={basetemp}")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*_ test_wait_for_times_out _*",
            "E * Timed out after 0.2 s waiting for 1 message matching: "
            "to='bob@example.com', subject containing 'Welcome'.",
            "E       3 messages arrived during this test (0 matching); closest first:",
            "E         1. from app@example.com to bob@example.org: 'Welcome Bob'",
            "E              to='bob@example.com': got 'bob@example.org'",
            "E         2. from app@example.com to bob@example.com: 'Invoice'",
            "E              subject containing 'Welcome': got 'Invoice'",
            "E         3. from app@example.com to zed@example.org: 'Invoice'",
            "*_ test_assert_sent_counts _*",
            "E * Expected 1 message matching subject containing 'Reminder', found 2.",
            "*_ test_assert_no_message _*",
            "E * Expected no message matching to='bob@example.com', but 1 arrived.",
            "E       Matching (1):",
            "E         1. from app@example.com to bob@example.com: 'Oops'",
            "*_ test_nothing_arrived _*",
            "E * Timed out after 0.1 s waiting for 1 message matching: any message.",
            "E       No message arrived during this test.",
            "*_ test_unknown_filter _*",
            "E * TypeError: unknown mail filter 'too'; did you mean 'to'? *",
        ]
    )
    # The plugin's own frames are hidden: the traceback ends at the test's line.
    assert "pytest_plugin/capture.py" not in result.stdout.str()
    # By default the failed tests' mail goes under pytest's temporary directory.
    result.stdout.fnmatch_lines([f"*saved as .eml files in {basetemp}/mailtrap-failed/*"])
    assert len(list((basetemp / "mailtrap-failed").glob("*/*.eml"))) == 6


def test_a_failed_test_reports_its_mail_and_saves_it_as_eml(project: pytest.Pytester):
    project.makepyfile(
        """
        def test_fails(mailtrap, sender):
            sender(mailtrap, to="bob@example.com", subject="Receipt")
            sender(mailtrap, to="carol@example.com", subject="Copy")
            assert False, "the application broke"

        def test_passes(mailtrap, sender):
            sender(mailtrap, subject="Not reported")

        def test_fails_without_mail(mailtrap):
            assert False
        """
    )
    eml_dir = project.path / "mail-of-failures"
    result = project.runpytest(*INNER, f"--mailtrap-eml-dir={eml_dir}")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- mailtrap: captured mail -*",
            f"2 messages received during this test, saved as .eml files in {eml_dir}/"
            "test_a_failed_test_reports_its_mail_and_saves_it_as_eml.py_test_fails:",
            "  1. from app@example.com to bob@example.com: 'Receipt'  [[]01-*.eml[]]",
            "  2. from app@example.com to carol@example.com: 'Copy'  [[]02-*.eml[]]",
            "*- mailtrap: captured mail -*",
            "No message was received during this test.",
        ]
    )
    assert "Not reported" not in result.stdout.str()
    (folder,) = eml_dir.iterdir()
    first, second = sorted(folder.iterdir())
    assert b"Subject: Receipt" in first.read_bytes()
    assert re.fullmatch(r"02-[A-Za-z0-9]+\.eml", second.name)


# -- external mode without a server -------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_external_server_is_one_clear_error(project: pytest.Pytester):
    project.makepyfile(
        """
        def test_one(mailtrap):
            pass

        def test_two(mailtrap):
            pass

        def test_without_mail():
            pass
        """
    )
    url = f"http://127.0.0.1:{closed_port()}/"
    result = project.runpytest(*INNER, f"--mailtrap-url={url}")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            f"mailtrap: external server {url}",
            "*_ ERROR at setup of test_one _*",
            f"Mailtrap server unreachable: cannot reach {url}: *Connection refused*"
            "--mailtrap-skip-unreachable.",
            "*_ ERROR at setup of test_two _*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "remote.py" not in result.stdout.str()


def test_an_unreachable_external_server_can_skip_instead(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    project.makepyfile("def test_one(mailtrap):\n    pass\n")
    monkeypatch.setenv("MAILTRAP_URL", f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.setenv("MAILTRAP_SKIP_UNREACHABLE", "1")
    result = project.runpytest(*INNER, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *Mailtrap server unreachable*"])
