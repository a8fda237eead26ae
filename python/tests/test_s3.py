"""`layerwise.run` into an S3-compatible bucket (a moto server on loopback) and `layerwise.open`
of it: the same tables as the local run."""

import os
import re
import subprocess
import sys

import boto3
import pytest

import layerwise as lw

from conftest import demo_config


@pytest.fixture
def bucket(monkeypatch):
    """A moto S3 server with the bucket `runs`; the environment points layerwise at it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stderr:
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                endpoint = found.group(0)
                break
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="runs")
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }.items():
            monkeypatch.setenv(name, value)
        yield client
    finally:
        server.kill()
        server.wait()


def test_a_run_in_a_bucket_opens_with_the_local_runs_tables(demo, bucket, tmp_path):
    remote = lw.run(demo_config(demo, "s3://runs/demo"), progress=False)
    local = lw.run(demo_config(demo, tmp_path / "local"), progress=False)
    assert remote.location == "s3://runs/demo" and remote.complete
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="runs")["Contents"]]
    assert "demo/run.json" in keys and "demo/stats/part-00000.parquet" in keys
    reopened = lw.open("s3://runs/demo")
    for table in ("images", "stats", "maps", "top"):
        assert getattr(reopened, table)().equals(getattr(local, table)()), table
    assert (reopened.map("block1_conv1", 2) == local.map("block1_conv1", 2)).all()
    assert os.path.isfile(reopened.report(tmp_path / "atlas"))
