"""The definition file format, translated as the AWS CLI's translator does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runner.definitionquery import secret_values, worker_groups
from runner.pipelinefile import (
    Definition,
    DefinitionError,
    definition_from_json,
    definition_to_json,
    load_definition,
    load_values,
    values_from_pairs,
)

HELLO: dict[str, Any] = {
    "objects": [
        {
            "id": "Default",
            "name": "Default",
            "scheduleType": "ondemand",
            "workerGroup": "#{myWorkerGroup}",
            "failureAndRerunMode": "CASCADE",
        },
        {
            "id": "SayHello",
            "type": "ShellCommandActivity",
            "command": "echo #{myGreeting}",
            "scriptArgument": ["a", "b"],
            "input": [{"ref": "In1"}, {"ref": "In2"}],
            "onFail": {"ref": "Alarm"},
        },
    ],
    "parameters": [
        {
            "id": "myGreeting",
            "type": "String",
            "default": "hello",
            "description": "what to say",
        },
        {"id": "myWorkerGroup", "type": "String", "allowedValues": ["wg-1", "wg-2"]},
    ],
    "values": {"myWorkerGroup": "wg-1", "myList": ["x", "y"]},
}


def test_objects_become_api_objects_with_sorted_fields() -> None:
    defn = definition_from_json(HELLO)
    assert defn.pipeline_objects[1] == {
        "id": "SayHello",
        "name": "SayHello",  # name defaults to id, as in the CLI
        "fields": [
            {"key": "command", "stringValue": "echo #{myGreeting}"},
            {"key": "input", "refValue": "In1"},
            {"key": "input", "refValue": "In2"},
            {"key": "onFail", "refValue": "Alarm"},
            {"key": "scriptArgument", "stringValue": "a"},
            {"key": "scriptArgument", "stringValue": "b"},
            {"key": "type", "stringValue": "ShellCommandActivity"},
        ],
    }
    assert defn.pipeline_objects[0]["name"] == "Default"


def test_parameters_and_values_become_api_shapes() -> None:
    defn = definition_from_json(HELLO)
    assert defn.parameter_objects == [
        {
            "id": "myGreeting",
            "attributes": [
                {"key": "default", "stringValue": "hello"},
                {"key": "description", "stringValue": "what to say"},
                {"key": "type", "stringValue": "String"},
            ],
        },
        {
            "id": "myWorkerGroup",
            "attributes": [
                {"key": "allowedValues", "stringValue": "wg-1"},
                {"key": "allowedValues", "stringValue": "wg-2"},
                {"key": "type", "stringValue": "String"},
            ],
        },
    ]
    assert defn.parameter_values == [
        {"id": "myWorkerGroup", "stringValue": "wg-1"},
        {"id": "myList", "stringValue": "x"},
        {"id": "myList", "stringValue": "y"},
    ]


def test_translation_does_not_mutate_its_input() -> None:
    before = copy.deepcopy(HELLO)
    definition_from_json(HELLO)
    assert before == HELLO


def test_round_trip_file_to_api_to_file() -> None:
    defn = definition_from_json(HELLO)
    doc = definition_to_json(
        defn.pipeline_objects, defn.parameter_objects, defn.parameter_values
    )
    expected = copy.deepcopy(HELLO)
    expected["objects"][1]["name"] = "SayHello"
    assert doc == expected
    again = definition_from_json(doc)
    assert again == defn


def test_round_trip_api_to_file_to_api() -> None:
    api_objects = [
        {
            "id": "A",
            "name": "Named A",
            "fields": [
                {"key": "output", "refValue": "B"},
                {"key": "step", "stringValue": "1"},
                {"key": "step", "stringValue": "2"},
                {"key": "step", "stringValue": "3"},
                {"key": "type", "stringValue": ""},
            ],
        }
    ]
    doc = definition_to_json(api_objects)
    assert doc == {
        "objects": [
            {
                "id": "A",
                "name": "Named A",
                "output": {"ref": "B"},
                "step": ["1", "2", "3"],
                "type": "",
            }
        ]
    }
    assert definition_from_json(doc).pipeline_objects == api_objects


def test_to_json_leaves_out_empty_parameters_and_values() -> None:
    assert definition_to_json([]) == {"objects": []}


def test_a_dict_that_is_not_exactly_a_ref_is_rejected() -> None:
    doc = {"objects": [{"id": "A", "x": {"ref": "B", "extra": 1}}]}
    with pytest.raises(DefinitionError, match='object "A": field "x" must be a string'):
        definition_from_json(doc)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a definition is a JSON object, not an array"),
        ({}, 'missing "objects" key'),
        ({"objects": {}}, '"objects" must be an array, not an object'),
        ({"objects": ["x"]}, "objects\\[0\\] must be a JSON object, not a string"),
        ({"objects": [{"name": "n"}]}, 'objects\\[0\\] has no "id" key'),
        ({"objects": [{"id": ""}]}, '"id" must be a non-empty string'),
        ({"objects": [{"id": 7}]}, '"id" must be a non-empty string'),
        ({"objects": [{"id": "A", "name": 3}]}, '"name" must be a non-empty string'),
        ({"objects": [{"id": "A"}, {"id": "A"}]}, 'object id "A" is used more than'),
        ({"objects": [{"id": "A", "n": 3}]}, 'field "n" must be .* not a number 3'),
        ({"objects": [{"id": "A", "n": True}]}, "not a boolean"),
        ({"objects": [{"id": "A", "n": None}]}, "not null"),
        ({"objects": [{"id": "A", "n": [["x"]]}]}, "not an array"),
        ({"objects": [{"id": "A", "n": {"ref": 5}}]}, '"ref" must be a non-empty id'),
        (
            {"objects": [], "parameters": [{"id": "myX", "default": {"ref": "A"}}]},
            'parameter "myX": field "default" must be a string or a list',
        ),
        ({"objects": [], "parameters": [{"type": "String"}]}, 'has no "id"'),
        ({"objects": [], "values": ["a"]}, '"values" must be an object'),
        ({"objects": [], "values": {"myX": 1}}, 'parameter "myX" must be a string'),
    ],
)
def test_bad_definitions_name_the_problem(doc: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        definition_from_json(doc)


def test_load_definition_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(HELLO), encoding="utf-8")
    assert load_definition(path) == definition_from_json(HELLO)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"objects": [}', "not valid JSON: Expecting value at line 1 column 14"),
        ("{}", 'missing "objects" key'),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_load_definition_errors_name_the_file(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DefinitionError, match=message) as caught:
        load_definition(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_load_definition_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definition(tmp_path / "missing.json")


def test_worker_groups_are_distinct_sorted_and_resolve_parameters() -> None:
    doc = copy.deepcopy(HELLO)
    doc["objects"] += [
        {"id": "B", "workerGroup": "zeta"},
        {"id": "C", "workerGroup": "zeta"},
        {"id": "D", "workerGroup": "pre-#{myGreeting}"},  # falls back to the default
    ]
    assert worker_groups(definition_from_json(doc)) == ["pre-hello", "wg-1", "zeta"]


def test_worker_groups_of_a_definition_without_any() -> None:
    assert worker_groups(definition_from_json({"objects": [{"id": "A"}]})) == []
    assert worker_groups(Definition([], [], [])) == []


@pytest.mark.parametrize(
    ("worker_group", "message"),
    [
        ("#{myMissing}", 'parameter "myMissing", which has no value'),
        ("#{myList}", 'parameter "myList", which has 2 values'),
        ("#{format(@scheduledStartTime, 'YYYY')}", "only the service can evaluate"),
    ],
)
def test_worker_groups_reject_what_they_cannot_resolve(
    worker_group: str, message: str
) -> None:
    doc = copy.deepcopy(HELLO)
    doc["objects"].append({"id": "B", "workerGroup": worker_group})
    with pytest.raises(DefinitionError, match=message):
        worker_groups(definition_from_json(doc))


def test_values_from_pairs_as_the_aws_cli_reads_them() -> None:
    pairs = ["myX=a=b", "*myKey=", "myList=1", "myList=2"]
    assert values_from_pairs(pairs) == [
        {"id": "myX", "stringValue": "a=b"},  # split at the first '='
        {"id": "*myKey", "stringValue": ""},
        {"id": "myList", "stringValue": "1"},
        {"id": "myList", "stringValue": "2"},
    ]
    for bad in ("myX", "=v"):
        with pytest.raises(DefinitionError, match="is not PARAMETER=VALUE"):
            values_from_pairs([bad])


def test_load_values_reads_a_values_file(tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps({"values": {"myX": "v", "myList": ["1", "2"]}}))
    assert load_values(path) == [
        {"id": "myX", "stringValue": "v"},
        {"id": "myList", "stringValue": "1"},
        {"id": "myList", "stringValue": "2"},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"objects": []}', 'an object with a "values" key'),
        ("[]", 'an object with a "values" key'),
        ('{"values": {"myX": 1}}', 'value of parameter "myX" must be a string'),
    ],
)
def test_load_values_names_the_file_it_refuses(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "values.json"
    path.write_text(content)
    with pytest.raises(DefinitionError, match=message) as exc:
        load_values(path)
    assert str(path) in str(exc.value)


def test_secret_values_are_masked_parameters_and_what_star_fields_use() -> None:
    defn = definition_from_json(
        {
            "objects": [
                {"id": "Db", "*password": "#{myDbPassword}", "user": "#{myUser}"},
                {"id": "Other", "*token": "literal-token", "*empty": ""},
            ],
            "parameters": [
                {"id": "*myKey", "default": "key-default"},
                {"id": "myDbPassword"},
                {"id": "myUser"},
            ],
            "values": {
                "*myKey": "key-given",
                "*myUndeclared": ["u1", "u2"],
                "myDbPassword": "db-pass",
                "myUser": "admin",
            },
        }
    )
    assert secret_values(defn) == {
        "key-default",
        "key-given",
        "u1",
        "u2",
        "db-pass",
        "literal-token",
    }
