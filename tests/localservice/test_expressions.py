"""The expression evaluator against the Developer Guide's examples, and its errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from runner.localservice.expressions import (
    ExpressionError,
    add_period,
    evaluate,
    evaluate_all,
    format_datetime,
    parse_datetime,
    parse_period,
    references,
    validate,
)

# The DG's examples use myDateTime = May 24, 2011 @ 5:10 pm GMT.
MY_DATE_TIME = datetime(2011, 5, 24, 17, 10, tzinfo=UTC)
VALUES: dict[str, object] = {
    "myDateTime": MY_DATE_TIME,
    "myList": ["one", "two"],
    "myNumbers": [1, 2],
    "myCount": "3",
    "myName": "report",
    "@scheduledStartTime": "2012-12-12T00:00:00",
    "node.@scheduledStartTime": "2012-12-12T00:00:00",
    "node.@scheduledEndTime": "2012-12-12T01:00:00",
    "node.output.directoryPath": "s3://bucket/out",
    "parent.@id": "ExampleDataNode",
    "*myPassword": "hunter2",
}


def lookup(ref: str) -> object:
    return VALUES[ref]


# (expression, result): the DG's examples, with the DG's results in wire format.
DG_EXAMPLES = [
    # dp-pipeline-reference-functions-datetime
    ("#{day(myDateTime)}", "24"),
    ("#{dayOfYear(myDateTime)}", "144"),
    ("#{firstOfMonth(myDateTime)}", "2011-05-01T17:10:00"),
    # The DG prints "2011-05-24T17:10:00 UTC": a typo, the pattern has a space.
    ("#{format(myDateTime,'YYYY-MM-dd HH:mm:ss z')}", "2011-05-24 17:10:00 UTC"),
    ("#{hour(myDateTime)}", "17"),
    ("#{makeDate(2011,5,24)}", "2011-05-24T00:00:00"),
    ("#{makeDateTime(2011,5,24,14,21)}", "2011-05-24T14:21:00"),
    ("#{midnight(myDateTime)}", "2011-05-24T00:00:00"),
    ("#{minusDays(myDateTime,1)}", "2011-05-23T17:10:00"),
    ("#{minusHours(myDateTime,1)}", "2011-05-24T16:10:00"),
    ("#{minusMinutes(myDateTime,1)}", "2011-05-24T17:09:00"),
    ("#{minusMonths(myDateTime,1)}", "2011-04-24T17:10:00"),
    ("#{minusWeeks(myDateTime,1)}", "2011-05-17T17:10:00"),
    ("#{minusYears(myDateTime,1)}", "2010-05-24T17:10:00"),
    ("#{minute(myDateTime)}", "10"),
    ("#{month(myDateTime)}", "5"),
    ("#{plusDays(myDateTime,1)}", "2011-05-25T17:10:00"),
    ("#{plusHours(myDateTime,1)}", "2011-05-24T18:10:00"),
    ("#{plusMinutes(myDateTime,1)}", "2011-05-24T17:11:00"),
    ("#{plusMonths(myDateTime,1)}", "2011-06-24T17:10:00"),
    ("#{plusWeeks(myDateTime,1)}", "2011-05-31T17:10:00"),
    ("#{plusYears(myDateTime,1)}", "2012-05-24T17:10:00"),
    ("#{sunday(myDateTime)}", "2011-05-22T17:10:00"),
    ("#{year(myDateTime)}", "2011"),
    ("#{yesterday(myDateTime)}", "2011-05-23T17:10:00"),
    ("#{inTimeZone(myDateTime,'America/Los_Angeles')}", "2011-05-24T10:10:00"),
    # dp-pipeline-reference-functions-math
    ("#{1 + 2}", "3"),
    ("#{1 - 2}", "-1"),
    ("#{1 * 2}", "2"),
    ("#{1 / 2}", "0"),
    ("#{1.0 / 2}", "0.5"),
    ("#{2 ^ 2}", "4.0"),
    # dp-pipeline-reference-functions-string
    ('#{"hel" + "lo"}', "hello"),
    # dp-pipeline-expressions
    ("s3://mybucket/#{parent.@id}.csv", "s3://mybucket/ExampleDataNode.csv"),
    (
        "Error for interval #{node.@scheduledStartTime}..#{node.@scheduledEndTime}.",
        "Error for interval 2012-12-12T00:00:00..2012-12-12T01:00:00.",
    ),
    (
        "S3 bucket '#{node.output.directoryPath}' succeeded",
        "S3 bucket 's3://bucket/out' succeeded",
    ),
    (
        "#{format(minusMinutes(@scheduledStartTime,30),'YYYY-MM-dd hh:mm:ss')}",
        "2012-12-11 11:30:00",
    ),
]


@pytest.mark.parametrize(("expression", "expected"), DG_EXAMPLES)
def test_dg_examples(expression: str, expected: str) -> None:
    assert evaluate(expression, lookup) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("#{midnight(makeDateTime(2011,5,25,17,10))}", "2011-05-25T00:00:00"),
        ("#{sunday(makeDate(2011,5,22))}", "2011-05-22T00:00:00"),  # a Sunday
        ("#{plusMonths(makeDate(2011,1,31),1)}", "2011-02-28T00:00:00"),
        ("#{plusYears(makeDate(2012,2,29),1)}", "2013-02-28T00:00:00"),
        ("#{plusDays(myDateTime,-1)}", "2011-05-23T17:10:00"),
        ("#{plusDays(@scheduledStartTime, myCount)}", "2012-12-15T00:00:00"),
        ("#{hour(inTimeZone(myDateTime,'Asia/Kolkata'))}", "22"),
        ("#{1 + 2 * 3}", "7"),
        ("#{(1 + 2) * 3}", "9"),
        ("#{-7 / 2}", "-3"),
        ("#{2 * -3 ^ 2}", "-18.0"),
        ("#{myCount * 2}", "6"),
        ("#{myName + '-' + 1}", "report-1"),
        ("#{'it\\'s'}", "it's"),
        ("#{*myPassword}", "hunter2"),
        ("#{myCount*myCount}", "9"),
        ("a}b #{ 1 } c", "a}b 1 c"),
        ("#{'}'}", "}"),
    ],
)
def test_operators_nesting_and_calendar_rules(expression: str, expected: str) -> None:
    assert evaluate(expression, lookup) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-dd'T'HH:mm:ss", "2011-05-24T17:10:00"),
        ("YYYYMMdd-HHmm", "20110524-1710"),
        ("yy M d H m s", "11 5 24 17 10 0"),
        ("EEE EEEE MMM MMMM", "Tue Tuesday May May"),
        ("h:mm a", "5:10 PM"),
        ("D e w x", "144 2 21 2011"),
        ("Z ZZ ZZZ zzzz", "+0000 +00:00 UTC UTC"),
        ("SSS 'o''clock' ''", "000 o'clock '"),
    ],
)
def test_format_follows_joda_patterns(pattern: str, expected: str) -> None:
    assert evaluate(f'#{{format(myDateTime, "{pattern}")}}', lookup) == expected


def test_format_in_another_zone_uses_its_offset_and_name() -> None:
    expression = "#{format(inTimeZone(myDateTime,'America/Los_Angeles'),'HH:mm z ZZ')}"
    assert evaluate(expression, lookup) == "10:10 PDT -07:00"


def test_hours_are_exact_durations_across_daylight_saving() -> None:
    # 2011-03-13 02:00 does not exist in Los Angeles: one hour after 01:30 is 03:30.
    expression = (
        "#{format(plusHours(inTimeZone(makeDateTime(2011,3,13,9,30),"
        "'America/Los_Angeles'),1),'HH:mm')}"
    )
    assert evaluate(expression, lookup) == "03:30"


def test_text_without_expressions_is_returned_unchanged() -> None:
    text = "echo {hello} # not an expression }"
    assert evaluate(text, lookup) == text
    assert references(text) == []


def test_lists_apply_element_by_element() -> None:
    assert evaluate_all("#{'this is ' + myList}", lookup) == [
        "this is one",
        "this is two",
    ]
    assert evaluate_all("s3://b/#{myList}/x", lookup) == [
        "s3://b/one/x",
        "s3://b/two/x",
    ]
    assert evaluate_all("#{myNumbers + 10}", lookup) == ["11", "12"]
    assert evaluate_all("plain", lookup) == ["plain"]


def test_evaluate_refuses_a_list_of_several_values() -> None:
    with pytest.raises(ExpressionError, match="has 2 values"):
        evaluate("#{myList}", lookup)
    assert evaluate("#{x}", lambda ref: ["only"]) == "only"


def test_references_lists_each_name_once_in_order() -> None:
    text = (
        "#{format(minusMinutes(node.@scheduledStartTime,30),'YYYY')} "
        "#{myA*myB} #{*myPassword} #{myA} #{-myC ^ 2}"
    )
    assert references(text) == [
        "node.@scheduledStartTime",
        "myA",
        "myB",
        "*myPassword",
        "myC",
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("#{substring('abc', 1)}", "unknown function 'substring'"),
        ("#{plusDays(myDateTime)}", "plusDays takes 2 arguments, got 1"),
        ("#{format(myDateTime,'x' 1}", "expected ',' or ')'"),
        ("x #{1 +", "unbalanced braces: '#{' at position 2 is never closed"),
        ("#{'abc}", "unterminated string"),
        ("#{}", "empty expression"),
        ("#{1 2}", "unexpected '2'"),
        ("#{(1 + 2}", "expected ')'"),
        ("#{1 == 2}", "unexpected '='"),
        ("#{#{x}}", "unexpected '#'"),
        ("#{a.}", "unexpected '.'"),
    ],
)
def test_validate_rejects_unsupported_syntax(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        validate(expression)


def test_validate_accepts_unknown_references() -> None:
    validate("#{format(plusDays(whatever.@x, myN), 'YYYY')} and #{1 + 2}")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("#{myMissing}", "unknown reference 'myMissing'"),
        ("#{plusDays('x', 1)}", "argument 1 of plusDays must be a date-time, got str"),
        ("#{plusDays(myDateTime, 'x')}", "argument 2 of plusDays must be an integer"),
        ("#{plusDays(myDateTime, 1.5)}", "must be an integer, got float '1.5'"),
        ("#{format(myDateTime, 5)}", "argument 2 of format must be a string"),
        ("#{myName * 2}", "'\\*' needs a number, got str 'report'"),
        ("#{myDateTime - 1}", "needs a number, got date-time"),
        ("#{-myName}", "unary '-' needs a number"),
        ("#{1 / 0}", "division by zero"),
        ("#{1.0 / 0}", "division by zero"),
        ("#{(0 - 8) ^ 0.5}", "is not a real number"),
        ("#{makeDate(2011, 2, 30)}", "no such date-time"),
        ("#{plusYears(myDateTime, 9000)}", "out of range"),
        ("#{inTimeZone(myDateTime, 'Mars/Olympus')}", "unknown time zone"),
        ("#{format(myDateTime, 'yyyy q')}", "illegal pattern letter 'q'"),
        ('#{format(myDateTime, "yyyy \'open")}', "unterminated quote"),
    ],
)
def test_evaluation_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        evaluate(f"prefix {expression}", lookup)
    assert "at position 7" in str(caught.value)


def test_an_unsupported_lookup_value_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="reference 'x' has a bool"):
        evaluate("#{x}", lambda ref: True)
    with pytest.raises(ExpressionError, match="has a NoneType"):
        evaluate("#{x}", lambda ref: None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15 minutes", timedelta(minutes=15)),
        ("1 minute", timedelta(minutes=1)),
        ("2 hours", timedelta(hours=2)),
        ("3 Hours", timedelta(hours=3)),
        ("1 day", timedelta(days=1)),
        ("1 Day", timedelta(days=1)),
        (" 2 weeks ", timedelta(weeks=2)),
        ("1 month", timedelta(days=30)),
        ("3 years", timedelta(days=3 * 365)),
        ("10minutes", timedelta(minutes=10)),
    ],
)
def test_parse_period(text: str, expected: timedelta) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize(
    "text", ["", "days", "0 days", "1 seconds", "1 dayss", "-1 day"]
)
def test_parse_period_rejects_bad_text(text: str) -> None:
    with pytest.raises(ExpressionError, match="bad period"):
        parse_period(text)
    with pytest.raises(ValueError, match="bad period"):  # ExpressionError is one
        parse_period(text)


def test_add_period_steps_by_the_calendar() -> None:
    start = datetime(2011, 1, 31, 6, tzinfo=UTC)
    assert add_period(start, "1 month") == datetime(2011, 2, 28, 6, tzinfo=UTC)
    assert add_period(start, "1 month", 3) == datetime(2011, 4, 30, 6, tzinfo=UTC)
    assert add_period(start, "15 minutes", 4) == datetime(2011, 1, 31, 7, tzinfo=UTC)
    naive = start.replace(tzinfo=None)
    assert add_period(naive, "1 year").tzinfo is None


def test_wire_format_round_trips() -> None:
    moment = datetime(2012, 12, 12, 0, 0, 5, tzinfo=UTC)
    assert format_datetime(moment) == "2012-12-12T00:00:05"
    assert parse_datetime("2012-12-12T00:00:05") == moment
    pacific = parse_datetime("2011-05-24T17:10:00").astimezone(
        datetime.now(UTC).astimezone().tzinfo
    )
    assert format_datetime(pacific) == "2011-05-24T17:10:00"  # rendered in UTC
    naive = datetime(2011, 5, 24, 17, 10, 0, 999)  # noqa: DTZ001 - naive means UTC
    assert format_datetime(naive) == "2011-05-24T17:10:00"


@pytest.mark.parametrize(
    "text", ["2012-12-12", "2012-12-12 00:00:00", "2012-13-01T00:00:00", "x"]
)
def test_parse_datetime_rejects_other_formats(text: str) -> None:
    with pytest.raises(ExpressionError, match="bad date-time"):
        parse_datetime(text)
