#!/usr/bin/env python3
"""Checks CloudWatch Embedded Metric Format records against the EMF specification.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

Reads lines on stdin; every line that parses as a JSON object with an `_aws` member is a record.
The structure is checked with the JSON Schema below (the specification's rules, with its current
limits: 30 dimensions per set, 100 metrics per directive, names of 1 to 255 characters), and the
rules a schema cannot say are checked in code: each dimension and metric a directive names is a
member of the root, dimension values are strings, metric values are numbers (or arrays of at
most 100 numbers), the timestamp is in milliseconds, and the namespace does not start with AWS/.

Prints {"records": n, "problems": [...]} and exits 1 when there is a problem or no record at all.
"""
import json
import sys

import jsonschema

UNITS = (
    "Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|"
    "Megabits|Gigabits|Terabits|Percent|Count|Bytes/Second|Kilobytes/Second|Megabytes/Second|"
    "Gigabytes/Second|Terabytes/Second|Bits/Second|Kilobits/Second|Megabits/Second|Gigabits/Second|"
    "Terabits/Second|Count/Second|None"
)
NAME = {"type": "string", "minLength": 1, "maxLength": 255}
SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "LogGroupName": {"type": "string", "minLength": 1},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 255},
                            "Dimensions": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "array", "minItems": 0, "maxItems": 30, "items": NAME},
                            },
                            "Metrics": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": NAME,
                                        "Unit": {"type": "string", "pattern": f"^({UNITS})$"},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def problems_of(record):
    problems = [f"schema: {e.message} at {list(e.absolute_path)}"
                for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(record)]
    if problems:
        return problems
    aws = record["_aws"]
    # Milliseconds since the epoch: after 2001 and before 2286 in milliseconds, not seconds.
    if not 1_000_000_000_000 <= aws["Timestamp"] < 10_000_000_000_000:
        problems.append(f"Timestamp {aws['Timestamp']} is not in milliseconds since the epoch")
    for directive in aws["CloudWatchMetrics"]:
        if directive["Namespace"].startswith("AWS/"):
            problems.append("Namespace must not start with AWS/")
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                if key not in record:
                    problems.append(f"dimension {key} is not a member of the root")
                elif not isinstance(record[key], str):
                    problems.append(f"dimension {key} is not a string: {record[key]!r}")
        for metric in directive["Metrics"]:
            name = metric["Name"]
            value = record.get(name)
            numbers = value if isinstance(value, list) else [value]
            if name not in record:
                problems.append(f"metric {name} is not a member of the root")
            elif isinstance(value, list) and len(value) > 100:
                problems.append(f"metric {name} has more than 100 values")
            elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                problems.append(f"metric {name} is not a number: {value!r}")
    return problems


def main():
    records, problems = 0, []
    for line in sys.stdin:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        records += 1
        problems += [f"record {records}: {p}" for p in problems_of(record)]
    if records == 0:
        problems.append("no EMF record in the input")
    print(json.dumps({"records": records, "problems": problems}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
