"""Commit message templates: validation and rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mdbackup.message import (
    PLACEHOLDERS,
    SUMMARY_MAX,
    ChangeSummary,
    render_message,
    summarize,
    template_problems,
)

NOW = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


def render(template: str, changes: ChangeSummary, hostname: str = "box") -> str:
    return render_message(template, changes=changes, hostname=hostname, now=NOW)


def test_placeholders_are_the_contract_ones() -> None:
    assert {
        "summary",
        "count",
        "added",
        "modified",
        "deleted",
        "files",
        "hostname",
        "timestamp",
    } == PLACEHOLDERS


@pytest.mark.parametrize(
    "template",
    [
        "backup: {summary}",
        "{count} {added} {modified} {deleted} {hostname} {timestamp}\n\n{files}",
        "no placeholders at all",
        "literal {{braces}} and {summary}",
    ],
)
def test_valid_templates_have_no_problems(template: str) -> None:
    assert template_problems(template) == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "backup: {summry}",
            "unknown placeholder {summry} (known: {added}, {count}, {deleted}, "
            "{files}, {hostname}, {modified}, {summary}, {timestamp})",
        ),
        ("{summary.x}", "unknown placeholder {summary.x}"),
        ("{files[0]}", "unknown placeholder {files[0]}"),
        ("{0}", "unknown placeholder {0}"),
        ("{}", "empty placeholder {}"),
        ("{count:>3}", "format spec not allowed in {count:>3}"),
        ("{summary!r}", "conversion not allowed in {summary!r}"),
        ("oops {", "malformed braces"),
        ("oops }", "malformed braces"),
        ("{summary", "malformed braces"),
    ],
)
def test_template_problems(template: str, expected: str) -> None:
    problems = template_problems(template)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_every_problem_is_reported_once() -> None:
    problems = template_problems("{a} {b} {a} {count:3}")
    assert [p.split(" (")[0] for p in problems] == [
        "unknown placeholder {a}",
        "unknown placeholder {b}",
        "format spec not allowed in {count:3}",
    ]


def test_render_rejects_an_invalid_template() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        render("{nope}", ChangeSummary(added=("a.md",)))


def test_summary_of_one_file() -> None:
    assert render("backup: {summary}", ChangeSummary(modified=("a.md",))) == "backup: 1 file: a.md"


def test_summary_sorts_all_kinds_of_change() -> None:
    changes = ChangeSummary(added=("sub/c.md",), modified=("b.md",), deleted=("a.md",))
    assert render("{summary}", changes) == "3 files: a.md, b.md, sub/c.md"


def test_summary_of_no_files() -> None:
    assert render("{summary}|{count}|{files}", ChangeSummary()) == "0 files|0|"


def test_summary_exactly_at_the_limit_is_not_shortened() -> None:
    header = "2 files: a.md, "
    second = "b" * (SUMMARY_MAX - len(header) - 3) + ".md"
    summary = summarize([second, "a.md"])
    assert len(summary) == SUMMARY_MAX
    assert summary == header + second


def test_summary_keeps_as_many_whole_names_as_fit() -> None:
    names = [f"notes/file-{i:02d}.md" for i in range(10)]
    summary = summarize(names)
    assert summary == ("10 files: notes/file-00.md, notes/file-01.md, notes/file-02.md, ...")
    assert len(summary) <= SUMMARY_MAX
    # one more name would not have fitted
    assert len("10 files: " + ", ".join(names[:4]) + ", ...") > SUMMARY_MAX


@pytest.mark.parametrize("count", range(1, 40))
def test_summary_never_exceeds_the_limit(count: int) -> None:
    names = [f"{'x' * (i * 3)}{i}.md" for i in range(count)]
    summary = summarize(names)
    assert len(summary) <= SUMMARY_MAX
    assert summary.startswith(f"{count} file{'' if count == 1 else 's'}: ")


def test_a_single_name_too_long_keeps_its_tail() -> None:
    name = "very/deep/" * 10 + "name.md"
    summary = summarize([name])
    assert len(summary) == SUMMARY_MAX
    assert summary.startswith("1 file: ...")
    assert summary.endswith("/name.md")
    assert name.endswith(summary.removeprefix("1 file: ..."))


def test_a_first_name_too_long_among_several_keeps_its_tail_then_more() -> None:
    long_name = "a/" * 40 + "first.md"
    summary = summarize([long_name, "z.md"])
    assert len(summary) == SUMMARY_MAX
    assert summary.startswith("2 files: ...")
    assert summary.endswith("first.md, ...")


def test_counts_and_files() -> None:
    changes = ChangeSummary(added=("n.md", "m.md"), modified=("b.md",), deleted=("z/old.md",))
    text = render("{count} +{added} ~{modified} -{deleted}\n{files}", changes)
    assert text == "4 +2 ~1 -1\nb.md\nm.md\nn.md\nz/old.md"


def test_a_path_listed_twice_is_counted_once() -> None:
    changes = ChangeSummary(added=("a.md", "a.md"))
    assert render("{count} {added} {summary}", changes) == "1 1 1 file: a.md"


def test_hostname_and_literal_braces() -> None:
    changes = ChangeSummary(added=("a.md",))
    assert render("{{{hostname}}}", changes, hostname="laptop") == "{laptop}"


def test_timestamp_is_local_time_with_offset_in_seconds() -> None:
    text = render("{timestamp}", ChangeSummary(added=("a.md",)))
    parsed = datetime.fromisoformat(text)
    assert parsed == NOW.replace(microsecond=0)
    assert parsed.utcoffset() == NOW.astimezone().utcoffset()
    assert text == NOW.astimezone().isoformat(timespec="seconds")
    assert "." not in text and len(text) == len("2026-11-27T10:00:00+00:00")


def test_timestamp_keeps_the_local_offset() -> None:
    local = datetime(2026, 6, 1, 8, 30, 15, tzinfo=timezone(timedelta(hours=2)))
    text = render_message("{timestamp}", changes=ChangeSummary(), hostname="h", now=local)
    assert text == local.astimezone().isoformat(timespec="seconds")
    assert datetime.fromisoformat(text) == local


def test_a_newline_in_a_file_name_keeps_the_subject_on_one_line() -> None:
    from datetime import datetime

    from mdbackup.message import ChangeSummary, render_message

    message = render_message(
        "backup: {summary}\n\n{files}",
        changes=ChangeSummary(added=("two\nlines.md", "b.md")),
        hostname="h",
        now=datetime(2026, 11, 27, 10, 0, 0),
    )
    subject, _, body = message.partition("\n\n")
    assert subject == "backup: 2 files: b.md, two\\nlines.md"
    assert body.splitlines() == ["b.md", "two\\nlines.md"]
