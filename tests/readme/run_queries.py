#!/usr/bin/env python3
"""Runs every code block of docs/output.md's "Query the results" section, verbatim, on a dataset.

usage: run_queries.py DOC OUT

Each block's text is taken as written, with the demo's dataset folder `out/demo` replaced by
OUT. SQL blocks run in DuckDB one statement at a time; each statement is named by its
first comment line. Python blocks run in order in one namespace, as in a notebook. Prints one
JSON object:

  {"sql": {COMMENT: {"columns": [...], "types": [...], "rows": [[...], ...]}, ...},
   "python": [{VARIABLE: VALUE, ...}, ...]}

with, per Python block, every data frame, numpy array and dict it assigns (data frames as
{"columns", "types", "rows"}, arrays as {"shape", "dtype", "values"}).
"""
import json
import re
import sys

import duckdb
import numpy as np
import polars as pl

SECTION = "## Query the results"
DATASET = "out/demo"


def section(readme):
    """The text of the section, up to the next second-level heading."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    return readme[start:end if end >= 0 else None]


def blocks(text):
    """(language, code) of each fenced block."""
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.S | re.M)


def statements(sql):
    """(first comment line, statement) of each statement of a SQL block."""
    for statement in sql.split(";"):
        lines = statement.strip().splitlines()
        if not lines:
            continue
        assert lines[0].startswith("-- "), f"a statement without a comment: {statement!r}"
        yield lines[0][3:], statement


def frame(columns, types, rows):
    return {"columns": list(columns), "types": [str(t) for t in types], "rows": rows}


def value(obj):
    """A JSON-able form of a variable worth checking, or None."""
    if isinstance(obj, pl.DataFrame):
        return frame(obj.columns, obj.dtypes, [list(r) for r in obj.rows()])
    if isinstance(obj, np.ndarray):
        return {"shape": list(obj.shape), "dtype": str(obj.dtype),
                "values": obj.ravel().tolist()}
    if isinstance(obj, dict):
        return obj
    return None


def main():
    readme_path, out = sys.argv[1:]
    with open(readme_path, encoding="utf-8") as f:
        text = section(f.read())
    results = {"sql": {}, "python": []}
    namespace = {}
    for language, code in blocks(text):
        code = code.replace(DATASET, out)
        if language == "sql":
            for name, statement in statements(code):
                relation = duckdb.sql(statement)
                results["sql"][name] = frame(
                    relation.columns, relation.types, [list(r) for r in relation.fetchall()])
        elif language == "python":
            before = dict(namespace)
            exec(compile(code, f"docs/output.md ({SECTION})", "exec"), namespace)
            results["python"].append({
                name: v for name, obj in namespace.items()
                if not name.startswith("_") and before.get(name) is not obj
                and (v := value(obj)) is not None})
        else:
            raise SystemExit(f"a {language} block in {SECTION}: only sql and python run")
    json.dump(results, sys.stdout, default=str)


if __name__ == "__main__":
    main()
