"""Refuse answers that would render a broken or unsafe project, before any file exists.

The answers arrive as JSON data (Jinja's ``tojson``) in a raw string, never as
code: JSON escapes every quote inside a value, and a raw string does not end at an
escaped quote, so no answer can close the string below. A hostile answer cannot
run here. Plain Python otherwise: the template's tests import it.
"""

from __future__ import annotations

import json
import keyword
import re
import sys

ANSWERS = r"""{{ {
    "project_name": cookiecutter.project_name,
    "project_slug": cookiecutter.project_slug,
    "package_name": cookiecutter.package_name,
    "description": cookiecutter.description,
    "author": cookiecutter.author,
    "port": cookiecutter.port,
} | tojson }}"""

# At most 50 characters, so that the code that names them stays within its lines.
SLUG = re.compile(r"(?=.{1,50}$)[a-z][a-z0-9]*(-[a-z0-9]+)*")
PACKAGE = re.compile(r"(?=.{1,50}$)[a-z][a-z0-9]*(_[a-z0-9]+)*")
# Names a rendered project imports: a package called one of these would shadow it.
TAKEN = frozenset(sys.stdlib_module_names) | {"pytest", "psutil", "uvloop", "tests"}
MAX_TEXT = 200
# The description is a paragraph of its own in the README: a line that starts a
# fenced code block or an HTML block there would swallow the rest of the README.
MARKDOWN_BLOCK = re.compile(r"\s*(```|~~~|<)")


class InvalidAnswer(ValueError):
    """An answer the template cannot render safely; the message says what is allowed."""


def validate(answers: dict[str, str]) -> None:
    """Raise InvalidAnswer naming the first answer that is not allowed."""
    for name in ("project_name", "description", "author"):
        text = answers[name]
        if not text.strip() or len(text) > MAX_TEXT or not text.isprintable():
            raise InvalidAnswer(
                f"{name} {text!r}: use one line of printable text, "
                f"1 to {MAX_TEXT} characters"
            )
    if MARKDOWN_BLOCK.match(answers["description"]):
        raise InvalidAnswer(
            f"description {answers['description']!r}: do not start it with ```, ~~~ "
            "or <, which would open a block that swallows the rest of the README"
        )
    slug = answers["project_slug"]
    if not SLUG.fullmatch(slug):
        raise InvalidAnswer(
            f"project_slug {slug!r}: use up to 50 lowercase ASCII letters, digits and "
            "single hyphens, starting with a letter (e.g. my-server); unless given, "
            "it is made from project_name"
        )
    package = answers["package_name"]
    if not PACKAGE.fullmatch(package):
        raise InvalidAnswer(
            f"package_name {package!r}: use up to 50 lowercase ASCII letters, digits "
            "and single underscores, starting with a letter (e.g. my_server)"
        )
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        raise InvalidAnswer(
            f"package_name {package!r} is a Python keyword: pick another"
        )
    if package in TAKEN:
        raise InvalidAnswer(
            f"package_name {package!r} would shadow the module of the same name that "
            "the project imports: pick another"
        )
    port = str(answers["port"])
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise InvalidAnswer(f"port {port!r}: use a whole number from 1 to 65535")


def main() -> int:
    try:
        validate(json.loads(ANSWERS))
    except InvalidAnswer as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
