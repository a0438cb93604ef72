"""The CloudWatch dashboards and alarms of template.yaml and ecs/monitoring.yaml are what CloudWatch accepts.

cfn-lint sees a DashboardBody as an opaque string. This check renders each body (every ${Name} of its !Sub
replaced by a plain value), parses it as JSON, checks each widget against the dashboard body structure
(type, x/y/width/height on the 24-column grid, a region, metric arrays of namespace, metric name, dimension
name/value pairs and at most one options object, or an expression with an id), and checks that every metric of
the server's own namespace is one the server writes (src/metrics.rs) and every alarm names one too.

usage: python dashboards.py template.yaml ecs/monitoring.yaml
"""
import json
import re
import sys

from cfnlint.decode import decode

# What src/metrics.rs writes, and the dimensions it writes them under.
SERVER_METRICS = {"Calls", "Errors", "Latency", "GrailScannedBytes", "ResultBytes", "UpstreamRetries"}
SERVER_DIMENSIONS = {"Outcome", "Tool", "PrincipalClass", "Environment"}
NAMESPACE = "NS-UNDER-TEST"


def render(sub):
    """The body of a !Sub (string or [string, vars]) with every ${...} replaced."""
    body = sub[0] if isinstance(sub, list) else sub
    variables = sub[1] if isinstance(sub, list) else {}
    def value(m):
        name = m.group(1)
        if name in variables or name == "Ns":
            return NAMESPACE if name == "Ns" else "value"
        return "eu-west-1" if name == "AWS::Region" else name
    return re.sub(r"\$\{([^}!]+)\}", value, body)


def check_metric_row(row, where):
    problems = []
    if len(row) == 1 and isinstance(row[0], dict):
        if "expression" not in row[0] or "id" not in row[0]:
            problems.append(f"{where}: an expression row needs expression and id")
        return problems
    options = row[-1] if isinstance(row[-1], dict) else None
    names = row[:-1] if options is not None else row
    if any(not isinstance(n, str) for n in names) or len(names) < 2 or len(names) % 2 != 0:
        return [f"{where}: expected [namespace, metric, (dimension, value)*, options?]: {row}"]
    namespace, metric, dims = names[0], names[1], names[2:]
    if namespace == NAMESPACE:
        if metric not in SERVER_METRICS:
            problems.append(f"{where}: the server writes no metric {metric}")
        for name in dims[0::2]:
            if name not in SERVER_DIMENSIONS:
                problems.append(f"{where}: the server writes no dimension {name}")
    return problems


def check_body(body, where):
    problems = []
    try:
        widgets = json.loads(body)["widgets"]
    except (ValueError, KeyError) as e:
        return [f"{where}: the DashboardBody is not a dashboard: {e}"]
    for i, widget in enumerate(widgets):
        w = f"{where} widget {i}"
        if widget.get("type") != "metric":
            problems.append(f"{w}: type {widget.get('type')}")
        for key in ("x", "y", "width", "height"):
            if not isinstance(widget.get(key), int):
                problems.append(f"{w}: {key} is missing")
        if widget.get("x", 0) + widget.get("width", 0) > 24:
            problems.append(f"{w}: wider than the 24-column grid")
        props = widget.get("properties", {})
        if not props.get("region") or not props.get("title"):
            problems.append(f"{w}: needs a region and a title")
        for j, row in enumerate(props.get("metrics", [])):
            problems += check_metric_row(row, f"{w} metric {j}")
        for expr in (r[0]["expression"] for r in props.get("metrics", []) if len(r) == 1 and isinstance(r[0], dict)):
            for metric in re.findall(r'MetricName=\\?"(\w+)\\?"', expr):
                if NAMESPACE in expr and metric not in SERVER_METRICS:
                    problems.append(f"{w}: SEARCH for a metric the server does not write: {metric}")
    return problems


def main(paths):
    problems = []
    for path in paths:
        template, matches = decode(path)
        if matches:
            problems += [f"{path}: cannot parse: {m}" for m in matches]
            continue
        dashboards = 0
        for name, res in template["Resources"].items():
            kind = res.get("Type")
            if kind == "AWS::CloudWatch::Dashboard":
                dashboards += 1
                problems += check_body(render(res["Properties"]["DashboardBody"]["Fn::Sub"]), f"{path} {name}")
            elif kind == "AWS::CloudWatch::Alarm":
                props = res["Properties"]
                stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
                if "MetricName" in props:
                    stats.append(props)
                for metric in stats:
                    if metric.get("Namespace") != "AWS/Lambda" and metric["MetricName"] not in SERVER_METRICS:
                        problems.append(f"{path} {name}: the server writes no metric {metric['MetricName']}")
        if dashboards == 0:
            problems.append(f"{path}: no dashboard")
    for p in problems:
        print(p)
    if not problems:
        print(f"ok: the dashboards and alarms of {', '.join(paths)} name only metrics the server writes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
