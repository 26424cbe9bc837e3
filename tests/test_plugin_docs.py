"""The README's pytest section: its examples run, and every fixture and option is documented."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from mailtrap.pytest_plugin import plugin

pytest_plugins = ["pytester"]

# Inner sessions skip the cache and Hypothesis's plugin (2 s per in-process session).
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

README = (Path(__file__).parent.parent / "README.md").read_text()
SECTION = README[
    README.index("## Testing with pytest") : README.index(
        "\n## ", README.index("## Testing with pytest") + 1
    )
]


def readme_examples() -> dict[str, dict[str, str]]:
    """{example: {path: content}} from the ``<!-- file: EXAMPLE/PATH -->`` blocks."""
    examples: dict[str, dict[str, str]] = defaultdict(dict)
    for match in re.finditer(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", README, re.DOTALL):
        example, _, path = match[1].partition("/")
        examples[example][path] = match[2]
    return dict(examples)


EXAMPLES = readme_examples()


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILTRAP_URL", "MAILTRAP_SMTP", "DJANGO_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)


def write_example(pytester: pytest.Pytester, example: str) -> int:
    """Write the example's files; returns how many tests they hold."""
    files = EXAMPLES[example]
    for path, content in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return sum(content.count("\ndef test_") for content in files.values())


def test_the_examples_are_the_expected_ones():
    assert sorted(EXAMPLES) == ["django", "flask", "settings", "smtplib"]
    assert sorted(EXAMPLES["django"]) == [
        "conftest.py",
        "pytest.ini",
        "shop/emails.py",
        "shop/settings.py",
        "test_receipt.py",
    ]


@pytest.mark.parametrize("example", ["smtplib", "django", "flask"])
def test_the_example_passes(pytester: pytest.Pytester, example: str):
    tests = write_example(pytester, example)
    assert tests >= 1
    result = pytester.runpytest_subprocess(*INNER)
    result.assert_outcomes(passed=tests)
    if example == "django":  # really through pytest-django, with its settings
        result.stdout.fnmatch_lines(["*django: version: *, settings: shop.settings (from ini)*"])


def test_the_settings_example_configures_tls_auth_and_a_size_limit(pytester: pytest.Pytester):
    write_example(pytester, "settings")
    pytester.makepyfile(
        """
        import smtplib
        import ssl

        import pytest

        def test_settings(mailtrap):
            with smtplib.SMTP(mailtrap.smtp_host, mailtrap.smtp_port, timeout=10) as smtp:
                with pytest.raises(smtplib.SMTPException):  # no TLS yet
                    smtp.sendmail("a@example.com", ["b@example.com"], "Subject: x\\r\\n\\r\\nx")
                smtp.starttls(context=ssl._create_unverified_context())
                smtp.login("app", "secret")
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: x\\r\\n\\r\\nx")
            assert mailtrap.wait_for().auth_user == "app"
            assert mailtrap.server.config.max_message_size == 1024 * 1024
        """
    )
    pytester.runpytest(*INNER).assert_outcomes(passed=1)


def _fixture_names() -> list[str]:
    tree = ast.parse(Path(plugin.__file__).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]


@pytest.mark.parametrize("fixture", _fixture_names())
def test_every_fixture_is_in_the_table_with_scope_type_and_default(fixture: str):
    row = re.search(rf"^\| `{fixture}` \| (\w+) \| (.+?) \| (.+?) \|$", SECTION, re.MULTILINE)
    assert row, f"fixture {fixture} is missing from the README's fixture table"
    assert row[1] in ("function", "session")


def test_every_option_and_its_environment_variable_are_documented(pytester: pytest.Pytester):
    options = re.findall(r"--mailtrap-[a-z-]+", Path(plugin.__file__).read_text())
    assert len(set(options)) == 4
    for option in set(options):
        variable = "MAILTRAP_" + option.removeprefix("--mailtrap-").upper().replace("-", "_")
        assert re.search(rf"^\| `{option}[ `].*\| `{variable}[`=]", SECTION, re.MULTILINE), option
